package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/kvflow/kvflow/internal/testsvc"
)

// The child is this test binary; see TestMain.
func TestRun_ChildSeesServices_ExitCodeKept_ServicesStopped(t *testing.T) {
	// Make run start its own services even under an outer testsvc run.
	t.Setenv(testsvc.EnvPostgres, "")
	t.Setenv(testsvc.EnvS3, "")
	out := filepath.Join(t.TempDir(), "urls")
	t.Setenv("TESTSVC_CHILD", out)

	var stderr bytes.Buffer
	code := Main([]string{"run", "--", os.Args[0]}, &stderr)
	if code != 3 {
		t.Fatalf("run returned %d, want the child's 3\n%s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("child wrote nothing: %v\n%s", err, stderr.String())
	}
	urls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(urls) != 2 {
		t.Fatalf("child wrote %q", b)
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still answers after run returned", u.Host)
		}
	}
	for _, want := range []string{"PostgreSQL on 127.0.0.1:", "MinIO on 127.0.0.1:"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("run's output lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestMain doubles as the child process of the run test: with TESTSVC_CHILD
// set it checks both services answer, writes their URLs there and exits 3.
func TestMain(m *testing.M) {
	if out := os.Getenv("TESTSVC_CHILD"); out != "" {
		if err := child(out); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func child(out string) error {
	pg, s3 := os.Getenv(testsvc.EnvPostgres), os.Getenv(testsvc.EnvS3)
	db, err := sql.Open("postgres", pg)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w", pg, err)
	}
	u, err := url.Parse(s3)
	if err != nil {
		return err
	}
	resp, err := http.Get("http://" + u.Host + "/minio/health/live")
	if err != nil {
		return fmt.Errorf("MinIO: %w", err)
	}
	resp.Body.Close()
	return os.WriteFile(out, []byte(pg+"\n"+s3+"\n"), 0o600)
}

func TestRun_SIGTERM_PassedToChild_ServicesStopped(t *testing.T) {
	t.Setenv(testsvc.EnvPostgres, "")
	t.Setenv(testsvc.EnvS3, "")
	t.Setenv("TESTSVC_CHILD", "")
	var stderr syncBuffer
	done := make(chan int)
	go func() { done <- Main([]string{"run", "--", "sleep", "60"}, &stderr) }()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stderr.String(), "MinIO on") || !strings.Contains(stderr.String(), "PostgreSQL on") {
		if time.Now().After(deadline) {
			t.Fatalf("services did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let run start the child
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 128+int(syscall.SIGTERM) {
			t.Fatalf("run returned %d, want %d (child killed by SIGTERM)\n%s", code, 128+int(syscall.SIGTERM), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if i := strings.Index(line, " on 127.0.0.1:"); i >= 0 {
			addr := strings.Fields(line[i+4:])[0]
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still answers after run returned", addr)
			}
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMain_UnknownCommand_Usage(t *testing.T) {
	var stderr bytes.Buffer
	if code := Main([]string{"serve"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") {
		t.Fatalf("Main(serve) = %d, %q; want 2 with usage", code, stderr.String())
	}
	if code := Main([]string{"run", "--"}, &stderr); code != 2 {
		t.Fatalf("Main(run --) = %d, want 2", code)
	}
}
