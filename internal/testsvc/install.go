package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// MinIOModule is the MinIO server version installed with go install when no
// minio binary is found.
const MinIOModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// Install makes sure the PostgreSQL and MinIO binaries are present,
// installing the missing ones.
func Install() error {
	if _, err := PostgresBinDir(); err != nil {
		return err
	}
	_, err := MinIOBin()
	return err
}

// PostgresBinDir returns the directory holding initdb and postgres. It
// prefers PostgreSQL 15 and, when none is found and we run as root, installs
// the distribution's package with apt-get.
func PostgresBinDir() (string, error) {
	if dir := findPostgres(); dir != "" {
		return dir, nil
	}
	unlock, err := installLock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if dir := findPostgres(); dir != "" { // installed while we waited
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("PostgreSQL binaries (initdb, postgres) were not found in /usr/lib/postgresql/*/bin or on PATH, and only root can install them: run `apt-get install -y postgresql` (version 15 preferred) or put initdb on PATH")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("PostgreSQL binaries were not found and apt-get is not available to install them; install PostgreSQL 15 and put initdb on PATH")
	}
	fmt.Fprintln(os.Stderr, "testsvc: PostgreSQL not found; installing it with apt-get")
	if err := run("apt-get", "update"); err != nil {
		return "", fmt.Errorf("apt-get update failed: %w", err)
	}
	if err := run("apt-get", "install", "-y", "--no-install-recommends", "postgresql-15"); err != nil {
		if err := run("apt-get", "install", "-y", "--no-install-recommends", "postgresql"); err != nil {
			return "", fmt.Errorf("apt-get install postgresql failed: %w", err)
		}
	}
	if dir := findPostgres(); dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("apt-get installed PostgreSQL but initdb is still not found in /usr/lib/postgresql/*/bin")
}

// findPostgres returns the first directory with initdb and postgres:
// version 15, then the newest other version, then PATH.
func findPostgres() string {
	var dirs []string
	if d := os.Getenv("KVFLOW_POSTGRES_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/usr/lib/postgresql/15/bin")
	others, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(others, func(i, j int) bool { return pgVersion(others[i]) > pgVersion(others[j]) })
	dirs = append(dirs, others...)
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d
		}
	}
	return ""
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// EtcdBin returns the path of etcd, for the side-by-side benchmark of
// issue 16; when it is missing and we run as root, it installs Debian's
// etcd-server with apt-get.
func EtcdBin() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	unlock, err := installLock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if p, err := exec.LookPath("etcd"); err == nil { // installed while we waited
		return p, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return "", fmt.Errorf("etcd was not found on PATH, and only root with apt-get can install it here: run `apt-get install -y etcd-server` or put etcd on PATH")
	}
	fmt.Fprintln(os.Stderr, "testsvc: etcd not found; installing Debian's etcd-server with apt-get")
	if err := run("apt-get", "update"); err != nil {
		return "", fmt.Errorf("apt-get update failed: %w", err)
	}
	if err := run("apt-get", "install", "-y", "--no-install-recommends", "etcd-server"); err != nil {
		return "", fmt.Errorf("apt-get install etcd-server failed: %w", err)
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("apt-get installed etcd-server but etcd is still not on PATH: %v", err)
	}
	return p, nil
}

// MinIOBin returns the path of the minio server binary: on PATH, in GOBIN or
// in GOPATH/bin; it installs MinIOModule with go install when missing.
func MinIOBin() (string, error) {
	if p := findMinIO(); p != "" {
		return p, nil
	}
	unlock, err := installLock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if p := findMinIO(); p != "" {
		return p, nil
	}
	fmt.Fprintf(os.Stderr, "testsvc: minio not found; running go install %s (this takes several minutes)\n", MinIOModule)
	if err := run("go", "install", MinIOModule); err != nil {
		return "", fmt.Errorf("go install %s failed: %w", MinIOModule, err)
	}
	if p := findMinIO(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("go install %s succeeded but no minio binary was found on PATH, in GOBIN or in GOPATH/bin", MinIOModule)
}

func findMinIO() string {
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	var dirs []string
	if gobin := goEnv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(goEnv("GOPATH")) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "minio"); isExec(p) {
			return p
		}
	}
	return ""
}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return os.Getenv(name)
	}
	return strings.TrimSpace(string(out))
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// run runs an installer command with its output on our stderr.
func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.Run()
}

// installLock serialises installs between test binaries running in parallel.
func installLock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kvflow-testsvc-install.lock"), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
