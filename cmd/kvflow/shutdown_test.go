package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvflow/kvflow/client"
)

// A real `kvflow server` process with an execution stuck in a download:
// the first SIGINT logs what it waits for and for how long, the second one
// ends the process at once instead of after the timeout.
func TestServerProcess_SecondInterruptStopsAtOnce(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kvflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	requested := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requested <- struct{}{}
		<-r.Context().Done()
	}))
	defer hang.Close()
	defer hang.CloseClientConnections()

	flows := t.TempDir()
	writeFlow(t, flows, "stuck.yaml", fmt.Sprintf("id: stuck\nnamespace: company.team\ntasks:\n  - {id: get, type: io.kestra.plugin.core.http.Download, uri: %q}\n", hang.URL))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logFile := filepath.Join(t.TempDir(), "server.log")
	logs, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(bin, "server", "--addr", addr, "--flows", flows, "--shutdown-timeout", "40s")
	cmd.Env = append(os.Environ(), "KVFLOW_DATA_DIR="+t.TempDir(), "KVFLOW_CONFIG=", "XDG_CONFIG_HOME="+t.TempDir(),
		"KVFLOW_DATABASE_URL=", "KVFLOW_STORAGE_URL=", "KVFLOW_API_TOKEN=", "KVFLOW_DOWNLOAD_ALLOW=127.0.0.1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()
	waitReady(t, "http://"+addr)

	c := client.NewClient("http://"+addr, "")
	if _, err := c.Execute(context.Background(), "company.team", "stuck", nil, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-requested:
	case <-time.After(30 * time.Second):
		t.Fatal("the execution never reached the download")
	}
	read := func() string { b, _ := os.ReadFile(logFile); return string(b) }

	cmd.Process.Signal(os.Interrupt)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(read(), "shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown line after the first SIGINT:\n%s", read())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line := read(); !strings.Contains(line, "Ctrl-C again stops at once executions=1 executions_wait=20s requests_wait=40s") {
		t.Errorf("shutdown line does not say what it waits for:\n%s", line)
	}
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("exit after the second SIGINT = %v, want status 130", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the second SIGINT took %s to stop the server", took)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		t.Fatalf("the server still runs 15s after the second SIGINT:\n%s", read())
	}
	if !strings.Contains(read(), "second interrupt: stopping now") {
		t.Errorf("no line for the second interrupt:\n%s", read())
	}
}
