package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
)

func TestConfig_PolicyScopeAndDownloadAllow(t *testing.T) {
	env := map[string]string{
		"KVFLOW_API_NAMESPACES":     "team.a.*, prod",
		"KVFLOW_ALLOWED_NAMESPACES": "team.a=team.a.*,shared",
		"KVFLOW_DOWNLOAD_ALLOW":     "10.0.0.0/8,minio.internal",
	}
	c := Config{DataDir: "/tmp/kvflow-config-test"}
	c.FromEnv(func(k string) string { return env[k] })
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.APIScope().String(); got != "prod, team.a.*" {
		t.Errorf("APIScope = %s", got)
	}
	if p := c.Policy(); !p.Grants("team.a", "shared") || !p.Grants("team.a", "team.a.b") || p.Grants("team.b", "shared") {
		t.Errorf("Policy grants do not follow allowedNamespaces")
	}
	if got := strings.Join(c.Download.Allow, " "); got != "10.0.0.0/8 minio.internal" {
		t.Errorf("Download.Allow = %q", got)
	}
	if c.HTTPClient() == nil {
		t.Error("HTTPClient is nil")
	}

	bad := Config{DataDir: "/tmp/x", AllowedNamespaces: map[string][]string{"a": {"Bad.*"}},
		Server: Server{Namespaces: []string{"ok.*", "a b.*"}}, Download: Download{Allow: []string{"10.0.0.0/40"}}}
	err := bad.Validate()
	if kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Fatalf("Validate = %v, want EINVALID", err)
	}
	for _, want := range []string{"allowedNamespaces[a]", "server.namespaces[1]", `download.allow: "10.0.0.0/40" is not a CIDR range`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}

// A rule of KVFLOW_ALLOWED_NAMESPACES that does not parse is an error
// naming the variable, the rule and the expected form, not dropped.
func TestFromEnv_AllowedNamespacesRefusesWhatItCannotRead(t *testing.T) {
	for _, v := range []string{"garbage", "a=b;garbage", "a=", "a=b;a= ,", "=b"} {
		var c Config
		_, problems := c.FromEnv(func(k string) string { return map[string]string{"KVFLOW_ALLOWED_NAMESPACES": v}[k] })
		rule := v[strings.LastIndex(v, ";")+1:]
		want := fmt.Sprintf(`KVFLOW_ALLOWED_NAMESPACES: rule %q is not from=ns1,ns2: expected rules such as "from=ns1,ns2;x=*"`, strings.TrimSpace(rule))
		if len(problems) != 1 || problems[0].Error() != want {
			t.Errorf("KVFLOW_ALLOWED_NAMESPACES=%q: %v, want %s", v, problems, want)
		}
	}
	var c Config
	c.FromEnv(func(k string) string { return map[string]string{"KVFLOW_ALLOWED_NAMESPACES": " a = b , c ; x=*;"}[k] })
	if got := fmt.Sprint(c.AllowedNamespaces); got != "map[a:[b c] x:[*]]" {
		t.Errorf("AllowedNamespaces = %s", got)
	}
}
