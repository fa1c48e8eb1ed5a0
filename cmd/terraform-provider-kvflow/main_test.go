package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow/terraform/provider"
)

// The test binary runs main when asked to, so the tests start the real
// command without building it.
func TestMain(m *testing.M) {
	if os.Getenv("KVFLOW_TEST_RUN_PROVIDER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "KVFLOW_TEST_RUN_PROVIDER_MAIN=1")
	return cmd
}

func TestMain_RunDirectly_RefusesAndExits1(t *testing.T) {
	out, err := command(t).CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("running the plugin directly: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "This binary is a plugin") {
		t.Errorf("output lacks the plugin notice:\n%s", out)
	}
}

// With -debug the provider serves protocol 6 under its registry address and
// prints how Terraform attaches to it; an interrupt stops it.
func TestMain_Debug_ServesRegistryAddress(t *testing.T) {
	cmd := command(t, "-debug")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if v, ok := strings.CutPrefix(line, "TF_REATTACH_PROVIDERS='"); ok {
				var reattach map[string]struct {
					Protocol        string
					ProtocolVersion int
				}
				if err := json.Unmarshal([]byte(strings.TrimSuffix(v, "'")), &reattach); err != nil {
					done <- err
					return
				}
				p, ok := reattach[provider.Address]
				if !ok || p.Protocol != "grpc" || p.ProtocolVersion != 6 {
					t.Errorf("reattach config %s: want %s served over grpc, protocol 6", v, provider.Address)
				}
				done <- nil
				return
			}
		}
		if err := sc.Err(); err != nil {
			done <- err
			return
		}
		done <- errors.New("the output ended without a TF_REATTACH_PROVIDERS line")
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("reading the reattach line: %v", err)
		}
	case <-time.After(time.Minute):
		t.Error("no TF_REATTACH_PROVIDERS line within a minute")
	}
	cmd.Process.Signal(os.Interrupt)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Error("the provider did not stop on an interrupt within 30s")
	}
}
