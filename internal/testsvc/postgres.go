package testsvc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq" // the readiness check and PostgresURL talk SQL
)

// Postgres is a throwaway PostgreSQL server on 127.0.0.1 with its data in a
// temp dir. Authentication is trust: it is for tests only.
type Postgres struct {
	dir  string // temp dir: data/, the unix socket, postgres.log
	port int
	bin  string
	cred *syscall.Credential // the postgres user when we run as root

	mu   sync.Mutex
	proc *proc
}

// NewPostgres starts a private PostgreSQL for one test and removes it at
// cleanup. Stop and Start let a test take it away and bring it back.
func NewPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	start := time.Now()
	p, err := StartPostgres()
	if err != nil {
		tb.Fatalf("testsvc: %v", err)
	}
	tb.Logf("testsvc: PostgreSQL on 127.0.0.1:%d ready in %s", p.port, time.Since(start).Round(time.Millisecond))
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("testsvc: %v", err)
		}
	})
	return p
}

// StartPostgres creates a cluster in a temp dir and starts PostgreSQL on a
// free port. Close stops it and removes the dir.
func StartPostgres() (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := makeServiceDir("postgres")
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, bin: bin}
	if err := p.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// The port is free when chosen but may be taken before postgres binds it.
	for attempt := 0; ; attempt++ {
		if p.port, err = freePort(); err != nil {
			break
		}
		if err = p.Start(); err == nil {
			return p, nil
		}
		if attempt == 2 || !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

func (p *Postgres) initdb() error {
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return err
		}
		p.cred = cred
		if err := os.Chown(p.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	if err := os.Chmod(p.dir, 0o700); err != nil {
		return err
	}
	logPath := p.LogPath()
	ip, err := startProc(p.dir, logPath, p.cred, syscall.SIGKILL, p.env(), filepath.Join(p.bin, "initdb"),
		"-D", filepath.Join(p.dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return err
	}
	<-ip.done
	if ip.err != nil {
		return fmt.Errorf("initdb in %s failed: %v\n%s", p.dir, ip.err, logTail(logPath, 30))
	}
	return nil
}

// Start starts the server on its port and data dir, and waits until it
// accepts connections. It does nothing if the server runs.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.exited() {
		return nil
	}
	proc, err := startProc(p.dir, p.LogPath(), p.cred, syscall.SIGQUIT, p.env(), filepath.Join(p.bin, "postgres"),
		"-D", filepath.Join(p.dir, "data"),
		"-p", strconv.Itoa(p.port),
		"-k", p.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	if err != nil {
		return err
	}
	p.proc = proc
	if err := p.waitReady(60 * time.Second); err != nil {
		proc.stop(syscall.SIGQUIT, 5*time.Second)
		return fmt.Errorf("PostgreSQL on 127.0.0.1:%d did not start: %v\n%s", p.port, err, logTail(p.LogPath(), 30))
	}
	return nil
}

func (p *Postgres) waitReady(timeout time.Duration) error {
	db, err := sql.Open("postgres", p.URL())
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.proc.exited() {
			return fmt.Errorf("postgres exited: %v", p.proc.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: SIGINT) and waits for it.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return nil
	}
	if err := p.proc.stop(syscall.SIGINT, 30*time.Second); err != nil {
		return fmt.Errorf("stop PostgreSQL on 127.0.0.1:%d: %w", p.port, err)
	}
	return nil
}

// Close stops the server and removes its directory.
func (p *Postgres) Close() error {
	err := p.Stop()
	if rerr := os.RemoveAll(p.dir); err == nil {
		err = rerr
	}
	return err
}

// URL is the admin URL of the server's postgres database.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Addr is the server's host:port.
func (p *Postgres) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// LogPath is the server's log file.
func (p *Postgres) LogPath() string { return filepath.Join(p.dir, "postgres.log") }

// PID is the postmaster's process id, or 0 when stopped.
func (p *Postgres) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || p.proc.exited() {
		return 0
	}
	return p.proc.cmd.Process.Pid
}

func (p *Postgres) env() []string {
	return append(os.Environ(), "LC_ALL=C", "LANG=C")
}

// postgresUser returns the credentials of the postgres user, which initdb
// and postgres need since they refuse to run as root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("we run as root and PostgreSQL refuses to, but there is no postgres user and useradd failed: %v: %s", err, out)
		}
		u, err = user.Lookup("postgres")
	}
	if err != nil {
		return nil, fmt.Errorf("look up the postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
