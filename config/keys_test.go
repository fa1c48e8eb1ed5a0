package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvflow/kvflow/storage/seal"
)

// The keyring of sensitive entries: the configured key, else on the
// embedded default a key file in the data directory, else none.
func TestKeys_ByConfiguration(t *testing.T) {
	dir := t.TempDir()
	pg := Config{DataDir: dir, DatabaseURL: "postgres://u@127.0.0.1/db"}
	if k, err := pg.Keys(); err != nil || k != nil {
		t.Errorf("PostgreSQL without a key: %v, %v; want none", k, err)
	}
	lite := Config{DataDir: dir}
	lite.Defaults()
	k, err := lite.Keys()
	if err != nil || k == nil {
		t.Fatalf("embedded default: %v, %v", k, err)
	}
	if _, err := k.Seal([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	b, err := seal.ParseKey(readFile(t, filepath.Join(dir, "secret.key")))
	if err != nil || len(b) != seal.KeySize {
		t.Errorf("secret.key: %v", err)
	}
	if got := pg.KeySource(); !strings.HasPrefix(got, "none: sensitive writes are refused") {
		t.Errorf("KeySource on PostgreSQL without a key = %q", got)
	}
	if got := lite.KeySource(); got != filepath.Join(dir, "secret.key")+" (made on first use)" {
		t.Errorf("KeySource on the embedded default = %q", got)
	}
	pg.SecretKey = seal.NewKey()
	if k, err := pg.Keys(); err != nil || k == nil {
		t.Errorf("PostgreSQL with a key: %v, %v", k, err)
	}
	bad := Config{DataDir: dir, SecretKey: "c2hvcnQ=", SecretKeyFile: "relative.key", SecretOldKeys: []string{"nope"}}
	err = bad.Validate()
	for _, want := range []string{"secretKey: set secretKey or secretKeyFile, not both", "secretKey: the key is 5 bytes",
		"secretKeyFile: \"relative.key\" must be an absolute path", "secretOldKeys[0]: the key is 3 bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to say %q", err, want)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The server's token comes from server.token or server.tokenFile, not both.
func TestValidate_TokenAndTokenFile(t *testing.T) {
	c := Config{DataDir: "/tmp/x", Server: Server{Token: "t", TokenFile: "/run/token"}}
	c.Defaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "server.token: set server.token or server.tokenFile, not both") {
		t.Errorf("Validate = %v", err)
	}
}

// A variable for the token or its file replaces both file settings, as a
// flag does: KVFLOW_API_TOKEN over a file's server.tokenFile is no conflict.
func TestFromEnv_TokenReplacesTheFilesTokenFile(t *testing.T) {
	c := Config{DataDir: "/tmp/x", Server: Server{TokenFile: "/run/token"}}
	env := map[string]string{"KVFLOW_API_TOKEN": "t"}
	if _, problems := c.FromEnv(func(k string) string { return env[k] }); len(problems) > 0 {
		t.Fatal(problems)
	}
	c.Defaults()
	if err := c.Validate(); err != nil || c.Server.Token != "t" || c.Server.TokenFile != "" {
		t.Errorf("token %q, file %q, %v; want the variable's token alone", c.Server.Token, c.Server.TokenFile, err)
	}
	c = Config{DataDir: "/tmp/x", SecretKey: "k"}
	env = map[string]string{"KVFLOW_SECRET_KEY_FILE": "/run/key"}
	c.FromEnv(func(k string) string { return env[k] })
	if c.SecretKey != "" || c.SecretKeyFile != "/run/key" {
		t.Errorf("secretKey %q, file %q; want the variable's file alone", c.SecretKey, c.SecretKeyFile)
	}
}
