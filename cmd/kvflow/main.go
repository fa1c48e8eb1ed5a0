// Command kvflow runs Kestra-style flows, serves the KV store's API and UI,
// and manages KV entries from the shell.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// subcommands are added by the files that define them (run.go, kv.go, …).
var subcommands []func() *cobra.Command

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var exit exitError
		if !errors.As(err, &exit) {
			fmt.Fprintln(os.Stderr, "Error:", kvflow.ErrorMessage(err))
		}
		os.Exit(exitCode(err))
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "kvflow",
		Short:         "Run Kestra-style flows on a typed, namespaced key-value store",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "configuration file (YAML); default $KVFLOW_CONFIG")
	for _, sub := range subcommands {
		root.AddCommand(sub())
	}
	return root
}

// loadConfig reads the configuration named by --config.
func loadConfig(cmd *cobra.Command) (config.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	return config.Load(path)
}

// openApp opens the configured database and object store.
func openApp(cmd *cobra.Command) (*app.App, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	return app.Open(cmd.Context(), cfg)
}

// exitError ends the process with a code, its message already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode maps an error to the process exit code: 2 for bad input, 3 for a
// missing key or flow, 4 for an unreachable service, 1 otherwise.
func exitCode(err error) int {
	var exit exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	switch kvflow.ErrorCode(err) {
	case kvflow.EINVALID:
		return 2
	case kvflow.ENOTFOUND, kvflow.EEXPIRED:
		return 3
	case kvflow.EUNAVAILABLE:
		return 4
	}
	return 1
}
