// Package config holds kvflow's settings: defaults, then an optional YAML
// file, then environment variables.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/netguard"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/seal"
)

// Config is everything kvflow can be told. The zero value plus Defaults is
// the embedded default: SQLite metadata and a local directory for values.
type Config struct {
	// DataDir holds the embedded default's database and values.
	DataDir string `yaml:"dataDir"`
	// DatabaseURL is postgres://… or sqlite:///path.
	DatabaseURL string `yaml:"databaseURL"`
	// StorageURL is s3://bucket/prefix?endpoint=… or file:///dir.
	StorageURL string `yaml:"storageURL"`
	// AllowedNamespaces lets flows of a namespace reach others besides their
	// own and its ancestors, whoever deployed them: source → targets. A source
	// or target ending in ".*" covers a namespace and all below it; "*" any.
	AllowedNamespaces map[string][]string `yaml:"allowedNamespaces"`

	// SecretKey seals the values of sensitive entries (AES-256-GCM): base64
	// of 32 bytes. SecretKeyFile names a file holding one instead. With
	// neither, the embedded default (a sqlite:// database) keeps a key in
	// DataDir/secret.key, made on the first sensitive write; a PostgreSQL
	// server refuses sensitive writes until one is set.
	SecretKey     string `yaml:"secretKey"`
	SecretKeyFile string `yaml:"secretKeyFile"`
	// SecretOldKeys are former keys, kept to read what they sealed (rotation).
	SecretOldKeys []string `yaml:"secretOldKeys"`

	Download Download `yaml:"download"`
	Server   Server   `yaml:"server"`

	// History is how long KV versions and the change feed are kept.
	History History `yaml:"history"`
}

// Download holds what tasks that fetch URLs may reach.
type Download struct {
	// Allow lists internal addresses tasks may reach although they are
	// loopback, link-local, private or otherwise internal: CIDR ranges,
	// addresses, host names, or "*" for all. Empty: only public addresses.
	Allow []string `yaml:"allow"`
}

// History is the retention of KV versions (global, and per namespace with
// its children; the nearest rule wins) and of the change feed.
type History struct {
	Versions   int                  `yaml:"versions"`
	MaxAge     time.Duration        `yaml:"maxAge"`
	Namespaces map[string]Retention `yaml:"namespaces"`
	Changes    time.Duration        `yaml:"changes"` // how long the change feed is kept; default 7 days
}

// Retention keeps the newest Versions of each key (default 10; -1: no count
// limit), and drops versions older than MaxAge (0: no age limit). The live
// version is always kept.
type Retention struct {
	Versions int           `yaml:"versions"`
	MaxAge   time.Duration `yaml:"maxAge"`
}

// Policy is the storage form of h.
func (h History) Policy() storage.HistoryPolicy {
	p := storage.HistoryPolicy{Default: storage.Retention{Versions: h.Versions, MaxAge: h.MaxAge}, Changes: h.Changes}
	if len(h.Namespaces) > 0 {
		p.Namespaces = map[string]storage.Retention{}
		for ns, r := range h.Namespaces {
			p.Namespaces[ns] = storage.Retention(r)
		}
	}
	return p
}

// Server holds `kvflow server` settings.
type Server struct {
	Addr          string        `yaml:"addr"`          // default 127.0.0.1:8080
	Token         string        `yaml:"token"`         // API bearer token; "" means none
	TokenFile     string        `yaml:"tokenFile"`     // file holding the token
	Insecure      bool          `yaml:"insecure"`      // allow a non-loopback address without a token
	Flows         string        `yaml:"flows"`         // directory of flow files loaded at start
	SweepInterval time.Duration `yaml:"sweepInterval"` // expired-entry purge period; default 1m
	SweepBatch    int           `yaml:"sweepBatch"`    // entries per purge transaction; default 1000
	MaxBodyBytes  int64         `yaml:"maxBodyBytes"`  // request body limit; default 8 MiB
	// ShutdownTimeout is how long a stopping server waits for requests and
	// executions; default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// Namespaces limits what API callers may reach: patterns "a.b", "a.b.*"
	// (a.b and below) or "*". Empty means every namespace.
	Namespaces []string `yaml:"namespaces"`
}

// Load returns the configuration: defaults, then the YAML file Discover
// finds, then environment variables.
func Load(path string) (Config, error) {
	c, _, err := LoadSources(path)
	return c, err
}

// LoadSources is Load, also telling where each setting came from. Every
// problem of the file, the environment and the values is reported at once,
// with its line when the file gave the setting.
func LoadSources(path string) (Config, Sources, error) {
	var c Config
	src := Sources{File: "", From: map[string]string{}}
	file, err := Discover(path, os.Getenv)
	if err != nil {
		return c, src, err
	}
	var problems []kvflow.FieldError
	lines := map[string]int{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return c, src, kvflow.Errorf(kvflow.EINVALID, "Cannot read configuration file: %v.", err)
		}
		if lines, problems, err = decodeFile(file, b, &c); err != nil {
			return c, src, err
		}
		src.File = file
		for _, s := range Settings {
			if _, ok := lines[s.Key]; ok {
				src.From[s.Key] = "file " + file
			}
		}
	}
	set, envProblems := c.FromEnv(os.Getenv)
	for _, k := range set {
		src.From[k] = "env " + envOf(k)
	}
	problems = append(problems, envProblems...)
	c.Defaults()
	for _, s := range Settings {
		if src.From[s.Key] == "" {
			src.From[s.Key] = "default"
		}
	}
	for _, p := range c.problems() {
		setting, _, _ := strings.Cut(p.Field, "[")
		if line := lines[p.Field]; line > 0 && src.From[setting] == "file "+file {
			p.File, p.Line = file, line
		}
		problems = append(problems, p)
	}
	return c, src, invalid(problems)
}

// invalid is the error of the problems, those with a line first in file
// order, or nil when there are none.
func invalid(problems []kvflow.FieldError) error {
	if len(problems) == 0 {
		return nil
	}
	sort.SliceStable(problems, func(i, j int) bool {
		a, b := problems[i].Line, problems[j].Line
		return a > 0 && (b == 0 || a < b)
	})
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Error()
	}
	return kvflow.Errorf(kvflow.EINVALID, "Configuration is invalid:\n  %s", strings.Join(msgs, "\n  "))
}

// Sources says where the settings came from: "default", "file PATH" or
// "env NAME". Command-line flags (kvflow server --addr …) are applied later,
// by the commands, and are not recorded here.
type Sources struct {
	File string            // the configuration file read, "" for none
	From map[string]string // by setting key (server.addr)
}

// Discover names the configuration file to read: path (--config) when set,
// else $KVFLOW_CONFIG, else $XDG_CONFIG_HOME/kvflow/config.yaml (or
// ~/.config/kvflow/config.yaml) when that file exists; "" for none.
func Discover(path string, getenv func(string) string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p := getenv("KVFLOW_CONFIG"); p != "" {
		return p, nil
	}
	p := DefaultFile(getenv)
	if p == "" {
		return "", nil
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", kvflow.Errorf(kvflow.EINVALID, "Cannot read configuration file: %v.", err)
	}
	return p, nil
}

// DefaultFile is $XDG_CONFIG_HOME/kvflow/config.yaml, or
// ~/.config/kvflow/config.yaml without XDG_CONFIG_HOME.
func DefaultFile(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "kvflow", "config.yaml")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "kvflow", "config.yaml")
	}
	return ""
}

// FromEnv overrides settings from KVFLOW_* variables and returns the keys
// of the settings it set, and what is wrong with the variables.
func (c *Config) FromEnv(getenv func(string) string) ([]string, []kvflow.FieldError) {
	var set []string
	var problems []kvflow.FieldError
	str := func(dst *string, key string) {
		if v := getenv(envOf(key)); v != "" {
			*dst = v
			set = append(set, key)
		}
	}
	// Two settings that give one thing, itself or a file holding it: a
	// variable for either replaces both, as a flag does.
	pair := func(a *string, ka string, b *string, kb string) {
		va, vb := getenv(envOf(ka)), getenv(envOf(kb))
		if va == "" && vb == "" {
			return
		}
		*a, *b = va, vb
		if va != "" {
			set = append(set, ka)
		}
		if vb != "" {
			set = append(set, kb)
		}
	}
	str(&c.DataDir, "dataDir")
	str(&c.DatabaseURL, "databaseURL")
	str(&c.StorageURL, "storageURL")
	pair(&c.SecretKey, "secretKey", &c.SecretKeyFile, "secretKeyFile")
	if v := getenv("KVFLOW_SECRET_OLD_KEYS"); v != "" {
		c.SecretOldKeys = nil
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				c.SecretOldKeys = append(c.SecretOldKeys, k)
			}
		}
		set = append(set, "secretOldKeys")
	}
	str(&c.Server.Addr, "server.addr")
	pair(&c.Server.Token, "server.token", &c.Server.TokenFile, "server.tokenFile")
	str(&c.Server.Flows, "server.flows")
	if v := getenv("KVFLOW_API_NAMESPACES"); v != "" {
		c.Server.Namespaces = nil
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				c.Server.Namespaces = append(c.Server.Namespaces, ns)
			}
		}
		set = append(set, "server.namespaces")
	}
	if v := getenv("KVFLOW_DOWNLOAD_ALLOW"); v != "" {
		c.Download.Allow = strings.Split(v, ",")
		set = append(set, "download.allow")
	}
	if v := getenv("KVFLOW_ALLOWED_NAMESPACES"); v != "" {
		allowed, err := ParseAllowed(v)
		if err != nil {
			problems = append(problems, kvflow.FieldError{Field: "KVFLOW_ALLOWED_NAMESPACES", Message: err.Error()})
		}
		c.AllowedNamespaces = allowed
		set = append(set, "allowedNamespaces")
	}
	if v := getenv("KVFLOW_INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, kvflow.FieldError{Field: "KVFLOW_INSECURE", Message: fmt.Sprintf("%q is not a boolean: expected true or false", v)})
		}
		c.Server.Insecure = b
		set = append(set, "server.insecure")
	}
	return set, problems
}

// ParseAllowed reads "from=ns1,ns2;from2=*" into an allow-list; a rule
// without a source or targets is an error naming it.
func ParseAllowed(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, rule := range strings.Split(s, ";") {
		if strings.TrimSpace(rule) == "" {
			continue
		}
		from, to, _ := strings.Cut(rule, "=")
		from = strings.TrimSpace(from)
		targets := 0
		for _, ns := range strings.Split(to, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				out[from] = append(out[from], ns)
				targets++
			}
		}
		if from == "" || targets == 0 {
			return nil, fmt.Errorf("rule %q is not from=ns1,ns2: expected rules such as \"from=ns1,ns2;x=*\"", kvflow.Clip(strings.TrimSpace(rule)))
		}
	}
	return out, nil
}

// Defaults fills what is unset.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = defaultDataDir()
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = c.defaultDatabaseURL()
	}
	if c.StorageURL == "" {
		c.StorageURL = "file://" + filepath.ToSlash(filepath.Join(c.DataDir, "storage"))
	}
	if c.Server.Addr == "" {
		c.Server.Addr = "127.0.0.1:8080"
	}
	if c.Server.SweepInterval == 0 {
		c.Server.SweepInterval = time.Minute
	}
	if c.Server.SweepBatch == 0 {
		c.Server.SweepBatch = 1000
	}
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = 8 << 20
	}
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = 30 * time.Second
	}
	if c.History.Versions == 0 {
		c.History.Versions = storage.DefaultVersions
	}
	for ns, r := range c.History.Namespaces {
		if r.Versions == 0 { // a rule's own default, not the global setting
			r.Versions = storage.DefaultVersions
			c.History.Namespaces[ns] = r
		}
	}
	if c.History.Changes == 0 {
		c.History.Changes = storage.DefaultChangeRetention
	}
}

// defaultDatabaseURL is the embedded default's database, in DataDir.
func (c *Config) defaultDatabaseURL() string {
	return "sqlite://" + filepath.ToSlash(filepath.Join(c.DataDir, "kvflow.db"))
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kvflow")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "kvflow")
	}
	return ".kvflow"
}

// Validate checks the settings, naming each bad field.
func (c *Config) Validate() error { return invalid(c.problems()) }

// problems is what is wrong with the settings, each naming its field as
// LoadSources' lines do: server.namespaces[1], history.namespaces[a].maxAge.
func (c *Config) problems() []kvflow.FieldError {
	var out []kvflow.FieldError
	add := func(field, format string, args ...any) {
		out = append(out, kvflow.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	abs := func(field, dir string) {
		if !filepath.IsAbs(dir) {
			add(field, "%q must be an absolute path", dir)
		}
	}
	abs("dataDir", c.DataDir)
	// The default follows dataDir, whose own check tells a relative one.
	u, err := url.Parse(c.DatabaseURL)
	if c.DatabaseURL != c.defaultDatabaseURL() && err == nil && u.Scheme == "sqlite" && (u.Host != "" || !path.IsAbs(u.Path)) {
		add("databaseURL", "%q must name an absolute path, as in sqlite:///absolute/path/kvflow.db", RedactURL(c.DatabaseURL))
	}
	if c.SecretKey != "" && c.SecretKeyFile != "" {
		add("secretKey", "set secretKey or secretKeyFile, not both")
	}
	if c.SecretKey != "" {
		if _, err := seal.ParseKey(c.SecretKey); err != nil {
			add("secretKey", "%v", err)
		}
	}
	if c.SecretKeyFile != "" {
		abs("secretKeyFile", c.SecretKeyFile)
	}
	for i, k := range c.SecretOldKeys {
		if _, err := seal.ParseKey(k); err != nil {
			add(fmt.Sprintf("secretOldKeys[%d]", i), "%v", err)
		}
	}
	for from, tos := range c.AllowedNamespaces {
		for _, ns := range append([]string{from}, tos...) {
			if err := storage.ValidatePattern(ns); err != nil {
				add("allowedNamespaces["+from+"]", "%v", kvflow.ErrorMessage(err))
			}
		}
	}
	if err := CheckAddr(c.Server.Addr); err != nil {
		add("server.addr", "%v", err)
	}
	if c.Server.Token != "" && c.Server.TokenFile != "" {
		add("server.token", "set server.token or server.tokenFile, not both")
	}
	for i, ns := range c.Server.Namespaces {
		if err := storage.ValidatePattern(ns); err != nil {
			add(fmt.Sprintf("server.namespaces[%d]", i), "%v", kvflow.ErrorMessage(err))
		}
	}
	if _, err := netguard.Parse(c.Download.Allow); err != nil {
		add("download.allow", "%s", strings.TrimPrefix(kvflow.ErrorMessage(err), "Download allow-list: "))
	}
	if c.Server.SweepInterval < 0 {
		add("server.sweepInterval", "must be positive")
	}
	if c.Server.ShutdownTimeout < 0 {
		add("server.shutdownTimeout", "must be positive")
	}
	if c.Server.SweepBatch < 0 {
		add("server.sweepBatch", "must be positive")
	}
	check := func(field string, r Retention) {
		if r.Versions < -1 {
			add(field+".versions", "must be -1 (no limit), 0 (the default, 10) or more")
		}
		if r.MaxAge < 0 {
			add(field+".maxAge", "must be positive")
		}
	}
	check("history", Retention{Versions: c.History.Versions, MaxAge: c.History.MaxAge})
	for ns, r := range c.History.Namespaces {
		if err := storage.ValidateNamespace(ns); err != nil {
			add("history.namespaces["+ns+"]", "%v", kvflow.ErrorMessage(err))
		}
		check("history.namespaces["+ns+"]", r)
	}
	if c.History.Changes < 0 {
		add("history.changes", "must be positive")
	}
	return out
}

// CheckAddr says what is wrong with an address to listen on, or nil:
// host:port, where an empty host means every interface (:8080).
func CheckAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("%q is not host:port such as 127.0.0.1:8080: %v", addr, err)
	}
	return nil
}

// Policy is the engine's namespace rule with AllowedNamespaces' grants.
func (c *Config) Policy() storage.Policy { return storage.NewPolicy(c.AllowedNamespaces) }

// HTTPClient is the client tasks fetch URLs with: internal addresses are
// refused unless Download.Allow lists them. Call it after Validate.
func (c *Config) HTTPClient() *http.Client {
	allow, _ := netguard.Parse(c.Download.Allow)
	return netguard.Client(allow)
}

// APIScope is what API callers may reach, and so what the flows they deploy
// and the executions they start may reach (server.namespaces).
func (c *Config) APIScope() storage.Scope { return storage.NewScope(c.Server.Namespaces...) }

// Keys is the keyring of sensitive entries: SecretKey, else the key in
// SecretKeyFile, else on a sqlite:// database the key in DataDir/secret.key
// (created, mode 0600, by the first sensitive write), each with
// SecretOldKeys for reads; nil when there is none (PostgreSQL without a key).
// Call it after Validate.
func (c *Config) Keys() (*seal.Keyring, error) {
	var old [][]byte
	for i, k := range c.SecretOldKeys {
		b, err := seal.ParseKey(k)
		if err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "secretOldKeys[%d]: %v.", i, err)
		}
		old = append(old, b)
	}
	switch {
	case c.SecretKey != "":
		k, err := seal.ParseKey(c.SecretKey)
		if err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "secretKey (KVFLOW_SECRET_KEY): %v.", err)
		}
		return seal.New(k, old...)
	case c.SecretKeyFile != "":
		b, err := os.ReadFile(c.SecretKeyFile)
		if err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "secretKeyFile: cannot read %s: %v.", c.SecretKeyFile, err)
		}
		k, err := seal.ParseKey(string(b))
		if err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "secretKeyFile %s: %v.", c.SecretKeyFile, err)
		}
		return seal.New(k, old...)
	case strings.HasPrefix(c.DatabaseURL, "sqlite:"):
		return seal.FileKeyring(filepath.Join(c.DataDir, "secret.key"), old...)
	case len(old) > 0: // reads of old values only
		return seal.FileKeyring("", old...)
	}
	return nil, nil
}

// KeySource says where the key of sensitive entries comes from, for the
// server's start-up line: never the key itself.
func (c *Config) KeySource() string {
	switch {
	case c.SecretKey != "":
		return "secretKey"
	case c.SecretKeyFile != "":
		return c.SecretKeyFile
	case strings.HasPrefix(c.DatabaseURL, "sqlite:"):
		return filepath.Join(c.DataDir, "secret.key") + " (made on first use)"
	}
	return "none: sensitive writes are refused until KVFLOW_SECRET_KEY or secretKeyFile is set"
}
