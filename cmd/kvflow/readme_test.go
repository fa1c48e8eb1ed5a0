package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's commands, run as a newcomer would paste them: in an empty
// HOME, with only what the README installs on PATH. 127.0.0.1:8080 (and
// localhost:8080) become a free port so parallel runs do not collide.

// readmeEnv is a fresh HOME with kvflow installed by `make install`.
type readmeEnv struct {
	t    *testing.T
	repo string
	home string
	addr string
	env  []string
}

func newReadmeEnv(t *testing.T) *readmeEnv {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	home := t.TempDir()
	// A terminal shows no progress meter; curl writes one when its output
	// goes to a file, as here.
	if err := os.WriteFile(filepath.Join(home, ".curlrc"), []byte("--no-progress-meter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &readmeEnv{t: t, repo: repo, home: home, addr: addr}
	// The Go caches stay where they are so nothing is rebuilt from scratch.
	goEnv := map[string]string{}
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	vals := strings.Split(strings.TrimSpace(string(out)), "\n")
	goEnv["GOCACHE"], goEnv["GOMODCACHE"], goEnv["GOROOT"] = vals[0], vals[1], vals[2]
	e.env = []string{
		"HOME=" + home,
		"PATH=" + filepath.Join(home, "go", "bin") + ":" + filepath.Join(goEnv["GOROOT"], "bin") + ":/usr/local/bin:/usr/bin:/bin",
		"GOCACHE=" + goEnv["GOCACHE"], "GOMODCACHE=" + goEnv["GOMODCACHE"], "GOFLAGS=" + os.Getenv("GOFLAGS"), "GOTOOLCHAIN=local",
		"KVFLOW_ADDR=" + addr, "CHECKPOINT_DISABLE=1", "LANG=C.UTF-8",
	}
	if p := os.Getenv("GOPROXY"); p != "" {
		e.env = append(e.env, "GOPROXY="+p)
	}
	return e
}

// port puts the test's address in place of the README's.
func (e *readmeEnv) port(s string) string {
	s = strings.ReplaceAll(s, "127.0.0.1:8080", e.addr)
	return strings.ReplaceAll(s, "localhost:8080", e.addr)
}

// sh runs a script with bash in dir; background jobs it starts are killed
// when the test ends.
func (e *readmeEnv) sh(dir, script string) (string, error) {
	e.t.Helper()
	cmd := exec.Command("bash", "-eo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, e.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A file, not a pipe: a server left in the background keeps it open.
	out, err := os.CreateTemp(e.t.TempDir(), "out")
	if err != nil {
		e.t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	if err == nil {
		pgid := cmd.Process.Pid
		e.t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGTERM) })
		err = cmd.Wait()
	}
	b, _ := os.ReadFile(out.Name())
	return strings.ReplaceAll(string(b), e.home, "/home/you"), err
}

// readmeSection is the text of a README section, up to the next "## ".
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+4]
	}
	return s
}

// fences returns the section's fenced blocks of a language, in order.
func fences(section, lang string) []string {
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	return out
}

// normalize hides what changes from run to run: times, dates, ids, durations.
var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "DATE"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\.\d{3}\b`), "TIME"},
	{regexp.MustCompile(`\b[0-9a-v]{20}\b`), "ID"},
	{regexp.MustCompile(`in \d+(\.\d+)?(ms|µs|s)\b`), "in DURATION"},
}

func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// The quick tour: each "$ command" runs in the repository and prints what
// the README shows under it.
func TestREADME_QuickTour(t *testing.T) {
	e := newReadmeEnv(t)
	tour := fences(readmeSection(t, "A quick tour"), "console")
	if len(tour) != 1 {
		t.Fatalf("the quick tour has %d console blocks, want 1", len(tour))
	}
	type step struct {
		cmd  string
		want []string
	}
	var steps []step
	for _, line := range strings.Split(strings.TrimRight(tour[0], "\n"), "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			steps = append(steps, step{cmd: cmd})
		} else if len(steps) > 0 {
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
		}
	}
	if len(steps) < 5 || !strings.HasPrefix(steps[0].cmd, "make install") {
		t.Fatalf("the quick tour should start with make install: %+v", steps)
	}
	for _, s := range steps {
		cmd := e.port(s.cmd)
		if strings.HasSuffix(strings.TrimSpace(strings.SplitN(cmd, "#", 2)[0]), "&") {
			// A server: started, then waited for as a user would.
			if _, err := e.sh(e.repo, cmd); err != nil {
				t.Fatalf("%s: %v", s.cmd, err)
			}
			waitReady(t, "http://"+e.addr)
			continue
		}
		out, err := e.sh(e.repo, cmd)
		if err != nil {
			t.Fatalf("$ %s: %v\n%s", s.cmd, err, out)
		}
		got := normalize(strings.TrimRight(out, "\n"))
		want := normalize(e.port(strings.TrimRight(strings.Join(s.want, "\n"), "\n")))
		if got != want {
			t.Errorf("$ %s printed:\n%s\nthe README shows:\n%s", s.cmd, got, want)
		}
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server ready at %s after a minute", base)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The Terraform section, pasted: build the provider, write the CLI
// configuration, write main.tf, start a server, apply with the real
// terraform (no init), read the key back.
func TestREADME_Terraform(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Fatal("the terraform CLI is missing: the README's Terraform section needs it")
	}
	e := newReadmeEnv(t)
	if out, err := e.sh(e.repo, "make install"); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	section := readmeSection(t, "Terraform")
	shells, hcl := fences(section, "sh"), fences(section, "hcl")
	if len(shells) != 2 || len(hcl) != 1 {
		t.Fatalf("the Terraform section has %d sh and %d hcl blocks, want 2 and 1", len(shells), len(hcl))
	}
	for _, want := range []string{"required_providers", "ttl", "description", "kvflow_kv_increment"} {
		if !strings.Contains(hcl[0], want) {
			t.Errorf("the Terraform example lacks %s", want)
		}
	}
	if out, err := e.sh(e.repo, e.port(shells[0])); err != nil {
		t.Fatalf("first block: %v\n%s", err, out)
	}
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "main.tf"), []byte(e.port(hcl[0])), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.sh(work, e.port(shells[1]))
	if err != nil {
		t.Fatalf("second block: %v\n%s", err, out)
	}
	for _, want := range []string{"Apply complete! Resources: 2 added", `team_keys = tolist([`, `"deploys",`, `"settings",`,
		"deploys = 1", `{"region":"eu-west-1","replicas":3}`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
