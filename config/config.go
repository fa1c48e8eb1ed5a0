// Package config holds kvflow's settings: defaults, then an optional YAML
// file, then environment variables.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
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
	// AllowedNamespaces lets flows (and API callers) of a namespace reach
	// others besides their own and its ancestors: source → targets. A source
	// or target ending in ".*" covers a namespace and all below it; "*" any.
	AllowedNamespaces map[string][]string `yaml:"allowedNamespaces"`

	Server Server `yaml:"server"`

	// History is how long KV versions and the change feed are kept.
	History History `yaml:"history"`
}

// History is the retention of KV versions (global, and per namespace with
// its children; the nearest rule wins) and of the change feed.
type History struct {
	Retention  `yaml:",inline"`
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
	p := storage.HistoryPolicy{Default: storage.Retention(h.Retention), Changes: h.Changes}
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
	// Namespaces limits what API callers may reach: patterns "a.b", "a.b.*"
	// (a.b and below) or "*". Empty means every namespace.
	Namespaces []string `yaml:"namespaces"`
}

// Load returns the configuration: defaults, then the YAML file at path (or
// at $KVFLOW_CONFIG when path is ""; none is fine), then environment variables.
func Load(path string) (Config, error) {
	var c Config
	if path == "" {
		path = os.Getenv("KVFLOW_CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, kvflow.Errorf(kvflow.EINVALID, "Cannot read configuration file: %v.", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, kvflow.Errorf(kvflow.EINVALID, "Configuration file %s is invalid: %v.", path, err)
		}
	}
	c.FromEnv(os.Getenv)
	c.Defaults()
	return c, c.Validate()
}

// FromEnv overrides settings from KVFLOW_* variables.
func (c *Config) FromEnv(getenv func(string) string) {
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.DataDir, "KVFLOW_DATA_DIR")
	set(&c.DatabaseURL, "KVFLOW_DATABASE_URL")
	set(&c.StorageURL, "KVFLOW_STORAGE_URL")
	set(&c.Server.Addr, "KVFLOW_ADDR")
	set(&c.Server.Token, "KVFLOW_API_TOKEN")
	set(&c.Server.TokenFile, "KVFLOW_API_TOKEN_FILE")
	set(&c.Server.Flows, "KVFLOW_FLOWS")
	if v := getenv("KVFLOW_API_NAMESPACES"); v != "" {
		c.Server.Namespaces = nil
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				c.Server.Namespaces = append(c.Server.Namespaces, ns)
			}
		}
	}
	if v := getenv("KVFLOW_ALLOWED_NAMESPACES"); v != "" {
		c.AllowedNamespaces = ParseAllowed(v)
	}
}

// ParseAllowed reads "from=ns1,ns2;from2=*" into an allow-list.
func ParseAllowed(s string) map[string][]string {
	out := map[string][]string{}
	for _, rule := range strings.Split(s, ";") {
		from, to, ok := strings.Cut(strings.TrimSpace(rule), "=")
		if !ok {
			continue
		}
		for _, ns := range strings.Split(to, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				out[strings.TrimSpace(from)] = append(out[strings.TrimSpace(from)], ns)
			}
		}
	}
	return out
}

// Defaults fills what is unset.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = defaultDataDir()
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.ToSlash(filepath.Join(c.DataDir, "kvflow.db"))
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
func (c *Config) Validate() error {
	var errs []string
	abs := func(field, dir string) {
		if !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Sprintf("%s: %q must be an absolute path", field, dir))
		}
	}
	abs("dataDir", c.DataDir)
	for from, tos := range c.AllowedNamespaces {
		for _, ns := range append([]string{from}, tos...) {
			if ns == "*" {
				continue
			}
			if err := storage.ValidateNamespace(strings.TrimSuffix(ns, ".*")); err != nil {
				errs = append(errs, fmt.Sprintf("allowedNamespaces[%s]: %v", from, kvflow.ErrorMessage(err)))
			}
		}
	}
	for i, ns := range c.Server.Namespaces {
		if ns == "*" {
			continue
		}
		if err := storage.ValidateNamespace(strings.TrimSuffix(ns, ".*")); err != nil {
			errs = append(errs, fmt.Sprintf("server.namespaces[%d]: %v", i, kvflow.ErrorMessage(err)))
		}
	}
	if c.Server.SweepInterval < 0 {
		errs = append(errs, "server.sweepInterval: must be positive")
	}
	if c.Server.SweepBatch < 0 {
		errs = append(errs, "server.sweepBatch: must be positive")
	}
	check := func(field string, r Retention) {
		if r.Versions < -1 {
			errs = append(errs, field+".versions: must be -1 (no limit), 0 (the default, 10) or more")
		}
		if r.MaxAge < 0 {
			errs = append(errs, field+".maxAge: must be positive")
		}
	}
	check("history", c.History.Retention)
	for ns, r := range c.History.Namespaces {
		if err := storage.ValidateNamespace(ns); err != nil {
			errs = append(errs, fmt.Sprintf("history.namespaces[%s]: %v", ns, kvflow.ErrorMessage(err)))
		}
		check("history.namespaces["+ns+"]", r)
	}
	if c.History.Changes < 0 {
		errs = append(errs, "history.changes: must be positive")
	}
	if len(errs) > 0 {
		return kvflow.Errorf(kvflow.EINVALID, "Configuration is invalid:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// Allowed reports whether namespace from may reach ns: always its own
// namespace and its ancestors (by whole dotted segments), otherwise only
// where AllowedNamespaces says so.
func (c *Config) Allowed(from, ns string) bool {
	if storage.IsSelfOrAncestor(ns, from) {
		return true
	}
	for src, tos := range c.AllowedNamespaces {
		if !matchNS(src, from) {
			continue
		}
		for _, to := range tos {
			if matchNS(to, ns) {
				return true
			}
		}
	}
	return false
}

// MatchNamespace matches a namespace against "*", "a.b" or "a.b.*" (a.b and below).
func MatchNamespace(pattern, ns string) bool { return matchNS(pattern, ns) }

// matchNS matches a namespace against "*", "a.b" or "a.b.*" (a.b and below).
func matchNS(pattern, ns string) bool {
	if pattern == "*" || pattern == ns {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, ".*"); ok {
		return ns == base || strings.HasPrefix(ns, base+".")
	}
	return false
}
