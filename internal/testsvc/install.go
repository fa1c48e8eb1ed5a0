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
	return aptInstall("PostgreSQL binaries (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH",
		findPostgres, "postgresql-15", "postgresql")
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
	return aptInstall("etcd on PATH", func() string {
		p, _ := exec.LookPath("etcd")
		return p
	}, "etcd-server")
}

// aptInstall returns what find finds. When it finds nothing and we run as
// root, it installs the first of Debian's pkgs that apt-get can, once for all
// test binaries, and finds again; what names the thing sought in errors.
func aptInstall(what string, find func() string, pkgs ...string) (string, error) {
	if p := find(); p != "" {
		return p, nil
	}
	unlock, err := installLock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if p := find(); p != "" { // installed while we waited
		return p, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return "", fmt.Errorf("no %s, and only root with apt-get can install it here: run `apt-get install -y %s`", what, pkgs[0])
	}
	fmt.Fprintf(os.Stderr, "testsvc: no %s; installing %s with apt-get\n", what, pkgs[0])
	if err := run("apt-get", "update"); err != nil {
		return "", fmt.Errorf("apt-get update failed: %w", err)
	}
	for i, pkg := range pkgs {
		if err = run("apt-get", "install", "-y", "--no-install-recommends", pkg); err == nil {
			break
		} else if i == len(pkgs)-1 {
			return "", fmt.Errorf("apt-get install %s failed: %w", pkg, err)
		}
	}
	if p := find(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("apt-get installed %s but there is still no %s", strings.Join(pkgs, " or "), what)
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
