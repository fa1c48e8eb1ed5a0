// Command testsvc installs and runs the throwaway PostgreSQL and MinIO that
// kvflow's tests use.
//
//	testsvc install             ensure the postgres and minio binaries exist
//	testsvc run -- CMD ARGS...  start both, run CMD with KVFLOW_TEST_POSTGRES_URL
//	                            and KVFLOW_TEST_S3_URL set, stop both, exit
//	                            with CMD's status
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/kvflow/kvflow/internal/testsvc"
)

const usage = `usage:
  testsvc install             install PostgreSQL (apt-get) and MinIO (go install) when missing
  testsvc run -- CMD ARGS...  run CMD beside a throwaway PostgreSQL and MinIO on 127.0.0.1`

func main() {
	os.Exit(Main(os.Args[1:], os.Stderr))
}

// Main runs one subcommand and returns the exit status.
func Main(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "install":
		if err := testsvc.Install(); err != nil {
			fmt.Fprintf(stderr, "testsvc: %v\n", err)
			return 1
		}
		return 0
	case "run":
		cmd := args[1:]
		if len(cmd) > 0 && cmd[0] == "--" {
			cmd = cmd[1:]
		}
		if len(cmd) == 0 {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		return run(cmd, stderr)
	default:
		fmt.Fprintf(stderr, "testsvc: unknown command %q\n%s\n", args[0], usage)
		return 2
	}
}

// run starts the services, runs cmd, and stops the services whatever
// happens to cmd. Signals that reach us are passed on to cmd.
func run(cmd []string, stderr io.Writer) int {
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)

	svcs, err := testsvc.StartMissing()
	if err != nil {
		fmt.Fprintf(stderr, "testsvc: %v\n", err)
		return 1
	}
	defer func() {
		if err := svcs.Close(); err != nil {
			fmt.Fprintf(stderr, "testsvc: %v\n", err)
		}
	}()
	if p := svcs.Postgres; p != nil {
		fmt.Fprintf(stderr, "testsvc: PostgreSQL on %s ready in %s (log %s)\n", p.Addr(), svcs.PostgresStartup.Round(time.Millisecond), p.LogPath())
	}
	if m := svcs.MinIO; m != nil {
		fmt.Fprintf(stderr, "testsvc: MinIO on %s ready in %s (log %s)\n", m.Endpoint(), svcs.MinIOStartup.Round(time.Millisecond), m.LogPath())
	}
	select {
	case sig := <-sigc:
		fmt.Fprintf(stderr, "testsvc: %v before %s started\n", sig, cmd[0])
		return 128 + int(sig.(syscall.Signal))
	default:
	}

	c := exec.Command(cmd[0], cmd[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, stderr
	// If we are killed outright the child gets SIGTERM rather than running
	// on against dead services. Pdeathsig follows the forking thread, so
	// hold this one until the child is done.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := c.Start(); err != nil {
		fmt.Fprintf(stderr, "testsvc: %v\n", err)
		return 127
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigc:
				c.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err = c.Wait()
	close(done)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	default:
		fmt.Fprintf(stderr, "testsvc: %v\n", err)
		return 1
	}
}
