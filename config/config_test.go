package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
)

func clearEnv(t *testing.T) {
	t.Helper()
	for _, s := range Settings {
		if s.Env != "" {
			t.Setenv(s.Env, "")
		}
	}
	t.Setenv("KVFLOW_CONFIG", "")
}

func write(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The file read is --config, else $KVFLOW_CONFIG, else the XDG default.
func TestDiscover_FlagThenEnvThenXDG(t *testing.T) {
	clearEnv(t)
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Setenv("KVFLOW_DATA_DIR", "")

	c, src, err := LoadSources("")
	if err != nil || src.File != "" || src.From["server.addr"] != "default" || c.Server.Addr != "127.0.0.1:8080" {
		t.Fatalf("no file: %+v, %+v, %v", c.Server, src, err)
	}
	def := write(t, filepath.Join(xdg, "kvflow", "config.yaml"), "server:\n  addr: 127.0.0.1:9001\n")
	c, src, err = LoadSources("")
	if err != nil || src.File != def || c.Server.Addr != "127.0.0.1:9001" || src.From["server.addr"] != "file "+def {
		t.Fatalf("XDG file: %+v, %+v, %v", c.Server, src, err)
	}
	env := write(t, filepath.Join(t.TempDir(), "env.yaml"), "server:\n  addr: 127.0.0.1:9002\n")
	t.Setenv("KVFLOW_CONFIG", env)
	if c, src, err = LoadSources(""); err != nil || src.File != env || c.Server.Addr != "127.0.0.1:9002" {
		t.Fatalf("$KVFLOW_CONFIG: %+v, %+v, %v", c.Server, src, err)
	}
	flag := write(t, filepath.Join(t.TempDir(), "flag.yaml"), "server:\n  addr: 127.0.0.1:9003\n")
	if c, src, err = LoadSources(flag); err != nil || src.File != flag || c.Server.Addr != "127.0.0.1:9003" {
		t.Fatalf("--config: %+v, %+v, %v", c.Server, src, err)
	}
	t.Setenv("KVFLOW_ADDR", "127.0.0.1:9004")
	if c, src, err = LoadSources(flag); err != nil || c.Server.Addr != "127.0.0.1:9004" || src.From["server.addr"] != "env KVFLOW_ADDR" {
		t.Fatalf("env over file: %+v, %+v, %v", c.Server, src, err)
	}
}

// Errors name the key as the file spells it, with its line and the
// nearest known key; every problem is reported at once, of parsing, of the
// values (with their line when the file gave them) and of the environment.
// A key given twice names both lines.
func TestLoad_ErrorsNameTheKeyWithSuggestion(t *testing.T) {
	clearEnv(t)
	path := write(t, filepath.Join(t.TempDir(), "c.yaml"), `databaseUrl: sqlite:///tmp/x.db
server:
  adr: 127.0.0.1:1
  sweepBatch: lots
  sweepInterval: soon
  insecure: maybe
bogus: 1
history:
  versions: -3
dataDir: relative/dir
secretOldKeys: [nope]
allowedNamespaces:
  a: [b]
  a: [c]
dataDir: /again
`)
	t.Setenv("KVFLOW_API_NAMESPACES", "Bad")
	t.Setenv("KVFLOW_INSECURE", "maybe")
	_, err := Load(path)
	if kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Fatalf("Load = %v, want EINVALID", err)
	}
	msg := kvflow.ErrorMessage(err)
	for _, want := range []string{
		path + `:1: unknown setting "databaseUrl"; did you mean "databaseURL"?`,
		path + `:3: unknown setting "server.adr"; did you mean "server.addr"?`,
		path + `:4: server.sweepBatch: "lots" is not a whole number`,
		path + `:5: server.sweepInterval: "soon" is not a duration such as 30s, 1m or 2h`,
		path + `:6: server.insecure: "maybe" is not a boolean (true or false)`,
		path + `:7: unknown setting "bogus"`,
		path + `:9: history.versions: must be -1 (no limit), 0 (the default, 10) or more`,
		path + `:10: dataDir: "relative/dir" must be an absolute path`,
		path + `:11: secretOldKeys[0]: the key is 3 bytes`,
		path + `:14: allowedNamespaces.a: given twice: line 13 gives it first`,
		path + `:15: dataDir: given twice: line 10 gives it first`,
		"\n  server.namespaces[0]: Namespace",
		"\n  " + `KVFLOW_INSECURE: "maybe" is not a boolean: expected true or false`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "config.Config") || strings.Contains(msg, "not found in type") {
		t.Errorf("error speaks Go:\n%s", msg)
	}
}

func TestValue_RedactsSecrets(t *testing.T) {
	c := Config{
		DatabaseURL: "postgres://kv:hunter2@db:5432/kv?sslmode=disable",
		StorageURL:  "s3://bucket/p?endpoint=minio:9000&accessKey=AKIA&secretKey=sekrit",
		Server:      Server{Token: "t0ken"},
	}
	got := ""
	for _, s := range Settings {
		got += s.Key + "=" + c.Value(s) + "\n"
	}
	for _, secret := range []string{"hunter2", "sekrit", "AKIA", "t0ken"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q shown:\n%s", secret, got)
		}
	}
	for _, want := range []string{"databaseURL=postgres://kv:REDACTED@db:5432/kv?sslmode=disable", "endpoint=minio%3A9000", "server.token=REDACTED"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
}

// The README's configuration table lists every setting with its variable.
func TestREADME_ListsEverySetting(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range Settings {
		row := "| `" + s.Key + "`"
		i := strings.Index(readme, row)
		if i < 0 {
			t.Errorf("README has no row for %s", s.Key)
			continue
		}
		line, _, _ := strings.Cut(readme[i:], "\n")
		if s.Env != "" && !strings.Contains(line, "`"+s.Env+"`") {
			t.Errorf("README's row for %s lacks %s: %s", s.Key, s.Env, line)
		}
	}
}

// A misspelt field of a namespace's retention is caught like any other key.
func TestLoad_UnknownKeyInANamespaceRetention(t *testing.T) {
	clearEnv(t)
	path := write(t, filepath.Join(t.TempDir(), "t.yaml"), "history:\n  namespaces:\n    company:\n      versons: 3\n")
	_, err := Load(path)
	if want := path + `:4: unknown setting "history.namespaces.company.versons"; did you mean "versions"?`; !strings.Contains(kvflow.ErrorMessage(err), want) {
		t.Fatalf("Load = %v, want it to say %s", err, want)
	}
}

// Addresses and SQLite paths are checked as the configuration loads: a
// server address is host:port, a SQLite path absolute as dataDir is.
func TestLoad_AddrAndSQLitePath(t *testing.T) {
	clearEnv(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("KVFLOW_DATA_DIR", t.TempDir())
	for _, tc := range []struct{ env, value, want string }{
		{"KVFLOW_ADDR", "notanaddr", `server.addr: "notanaddr" is not host:port such as 127.0.0.1:8080: missing port in address`},
		{"KVFLOW_ADDR", ":8080", ""},
		{"KVFLOW_DATABASE_URL", "sqlite://relative.db", `databaseURL: "sqlite://relative.db" must name an absolute path, as in sqlite:///absolute/path/kvflow.db`},
		{"KVFLOW_DATABASE_URL", "sqlite:relative.db", `databaseURL: "sqlite:relative.db" must name an absolute path`},
		{"KVFLOW_DATABASE_URL", "sqlite:///abs/kvflow.db", ""},
	} {
		t.Setenv(tc.env, tc.value)
		_, err := Load("")
		if tc.want == "" && err != nil || tc.want != "" && (kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s=%s: Load = %v, want %q", tc.env, tc.value, err, tc.want)
		}
		t.Setenv(tc.env, "")
	}
}

// Every setting shows its effective value: defaults filled in, limits that
// are none said so, the key's source without a secretKey.
func TestValue_EffectiveDefaults(t *testing.T) {
	c := Config{DataDir: "/data", History: History{MaxAge: 0, Namespaces: map[string]Retention{
		"company": {Versions: 3}, "audit.logs": {Versions: -1, MaxAge: 720 * time.Hour}, "tmp": {MaxAge: time.Hour}}}}
	c.Defaults()
	got := map[string]string{}
	for _, s := range Settings {
		got[s.Key] = c.Value(s)
	}
	for key, want := range map[string]string{
		"history.versions":   "10",
		"history.maxAge":     "0s (no limit)",
		"history.changes":    "168h0m0s",
		"history.namespaces": "audit.logs: versions -1 (no limit), maxAge 720h0m0s; company: versions 3, maxAge 0s (no limit); tmp: versions 10, maxAge 1h0m0s",
		"secretKey":          "/data/secret.key (made on first use)",
	} {
		if got[key] != want {
			t.Errorf("%s = %q, want %q", key, got[key], want)
		}
	}
	if p := c.History.Policy(); p.Default.Versions != 10 || p.Changes != 7*24*time.Hour {
		t.Errorf("Policy = %+v: the defaults shown are not the ones applied", p)
	}
}
