package testsvc

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MinIO is a throwaway single-drive MinIO server on 127.0.0.1 with its data
// in a temp dir.
type MinIO struct {
	dir         string // temp dir: data/, certs/, minio.log
	port        int
	consolePort int
	bin         string
	accessKey   string
	secretKey   string

	mu   sync.Mutex
	proc *proc
}

// NewMinIO starts a private MinIO for one test and removes it at cleanup.
// Stop and Start let a test take it away and bring it back.
func NewMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	start := time.Now()
	m, err := StartMinIO()
	if err != nil {
		tb.Fatalf("testsvc: %v", err)
	}
	tb.Logf("testsvc: MinIO on %s ready in %s", m.Endpoint(), time.Since(start).Round(time.Millisecond))
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("testsvc: %v", err)
		}
	})
	return m
}

// StartMinIO starts MinIO on free ports with random root credentials. Close
// stops it and removes its dir.
func StartMinIO() (*MinIO, error) {
	bin, err := MinIOBin()
	if err != nil {
		return nil, err
	}
	dir, err := makeServiceDir("minio")
	if err != nil {
		return nil, err
	}
	m := &MinIO{dir: dir, bin: bin, accessKey: "kvflow-" + randomHex(4), secretKey: randomHex(16)}
	// The ports are free when chosen but may be taken before minio binds them.
	for attempt := 0; ; attempt++ {
		if m.port, err = freePort(); err != nil {
			break
		}
		if m.consolePort, err = freePort(); err != nil {
			break
		}
		if err = m.Start(); err == nil {
			return m, nil
		}
		if attempt == 2 || !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

// Start starts the server on its ports and data dir, and waits until it
// serves requests. It does nothing if the server runs.
func (m *MinIO) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return nil
	}
	env := append(os.Environ(),
		"MINIO_ROOT_USER="+m.accessKey,
		"MINIO_ROOT_PASSWORD="+m.secretKey,
		"MINIO_CI_CD=1", // small buffer pool, no root-drive check
		"MINIO_UPDATE=off",
	)
	proc, err := startProc(m.dir, m.LogPath(), nil, syscall.SIGKILL, env, m.bin,
		"server", filepath.Join(m.dir, "data"),
		"--address", m.Endpoint(),
		"--console-address", "127.0.0.1:"+strconv.Itoa(m.consolePort),
		"--certs-dir", filepath.Join(m.dir, "certs"),
	)
	if err != nil {
		return err
	}
	m.proc = proc
	if err := m.waitReady(60 * time.Second); err != nil {
		proc.stop(syscall.SIGKILL, 5*time.Second)
		return fmt.Errorf("MinIO on %s did not start: %v\n%s", m.Endpoint(), err, logTail(m.LogPath(), 30))
	}
	return nil
}

// waitReady waits for the liveness check, then for the cluster check that
// says the drive accepts writes.
func (m *MinIO) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for _, path := range []string{"/minio/health/live", "/minio/health/cluster"} {
		for {
			resp, err := client.Get("http://" + m.Endpoint() + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("%s answered %s", path, resp.Status)
			}
			if m.proc.exited() {
				return fmt.Errorf("minio exited: %v", m.proc.err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no answer within %s: %v", timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Stop shuts the server down (SIGTERM) and waits for it.
func (m *MinIO) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return nil
	}
	if err := m.proc.stop(syscall.SIGTERM, 15*time.Second); err != nil {
		return fmt.Errorf("stop MinIO on %s: %w", m.Endpoint(), err)
	}
	return nil
}

// Close stops the server and removes its directory.
func (m *MinIO) Close() error {
	err := m.Stop()
	if rerr := os.RemoveAll(m.dir); err == nil {
		err = rerr
	}
	return err
}

// Endpoint is the S3 API's host:port.
func (m *MinIO) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// AccessKey and SecretKey are the root credentials.
func (m *MinIO) AccessKey() string { return m.accessKey }
func (m *MinIO) SecretKey() string { return m.secretKey }

// URL is the server's admin URL, http://ACCESS:SECRET@127.0.0.1:PORT, the
// form of KVFLOW_TEST_S3_URL.
func (m *MinIO) URL() string {
	return (&url.URL{Scheme: "http", User: url.UserPassword(m.accessKey, m.secretKey), Host: m.Endpoint()}).String()
}

// S3URL is a storage URL for bucket "kvflow", prefix "objects", on this
// server; storage/s3 creates the bucket when it opens the URL.
func (m *MinIO) S3URL() string {
	return s3URL(m.Endpoint(), m.accessKey, m.secretKey, false, "kvflow", "objects")
}

// LogPath is the server's log file.
func (m *MinIO) LogPath() string { return filepath.Join(m.dir, "minio.log") }

// PID is the server's process id, or 0 when stopped.
func (m *MinIO) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// s3URL builds a storage URL as storage/s3 parses it.
func s3URL(endpoint, accessKey, secretKey string, secure bool, bucket, prefix string) string {
	q := url.Values{}
	q.Set("endpoint", endpoint)
	q.Set("accessKey", accessKey)
	q.Set("secretKey", secretKey)
	q.Set("secure", strconv.FormatBool(secure))
	return (&url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: q.Encode()}).String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
