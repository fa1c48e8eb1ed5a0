// Command kvflow runs Kestra-style flows, serves the KV store's API and UI,
// and manages KV entries, flows and executions from the shell.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/config"
)

// version and commit are stamped at build time (make build, make install):
// -ldflags "-X main.version=v1.2.0 -X main.commit=abc1234". Without them the
// module's build information is used.
var version, commit string

// subcommands are added by the files that define them (run.go, kv.go, …).
var subcommands []func() *cobra.Command

// serverHandlesSecondSignal is set by `kvflow server`, which logs its own
// line before stopping at a second signal.
var serverHandlesSecondSignal atomic.Bool

// main cancels the command's context at the first SIGINT or SIGTERM; a
// second one ends the process at once.
func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		cancel()
		<-sig
		if !serverHandlesSecondSignal.Load() {
			fmt.Fprintln(os.Stderr, "Interrupted twice: stopping now.")
			os.Exit(130)
		}
	}()
	os.Exit(Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Main runs the command line args and returns the exit status; main and the
// tests share it.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit exitError
	var usage *usageError
	switch {
	case errors.As(err, &exit):
	case errors.As(err, &usage):
		usage.print(stderr, args)
	default:
		fmt.Fprintln(stderr, "Error:", kvflow.ErrorMessage(err))
		if hint := hintFor(err); hint != "" {
			fmt.Fprintln(stderr, hint)
		}
	}
	return exitCode(err)
}

// exitCodes is the one list of exit statuses: --help prints it and a test
// checks the README against it.
var exitCodes = []struct {
	Code    int
	Meaning string
}{
	{0, "done (run, execution run --wait: the execution ended SUCCESS or WARNING)"},
	{1, "the execution ended FAILED or KILLED, or an unexpected error"},
	{2, "bad input: a usage mistake, an invalid flow, value, flag or configuration"},
	{3, "not found: no such key, flow or execution, or the key expired"},
	{4, "unreachable: the server, the database or the object store"},
	{5, "refused: a missing or wrong API token, a namespace not allowed, an exposed server without a token"},
	{6, "conflict: the key or flow already exists, or changed since the version given (--if-version)"},
}

func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit status:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.Code, e.Meaning)
	}
	return b.String()
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "kvflow",
		Short: "Run Kestra-style flows on a typed, namespaced key-value store",
		Long: `kvflow runs Kestra-style YAML flows on a typed, namespaced key-value store,
serves its REST API and web UI (kvflow server), and manages KV entries, flows
and executions from the shell, on the local store or on a server (--server).

` + exitCodesHelp(),
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		// Every command checks the log flags, whether it logs or not.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Name() == cobra.ShellCompRequestCmd || cmd.Name() == "help" || cmd.HasParent() && cmd.Parent().Name() == "completion" {
				return nil // help and completion work whatever the log settings
			}
			_, err := newLogger(cmd, io.Discard)
			return err
		},
	}
	root.SetVersionTemplate("kvflow {{.Version}}\n")
	p := root.PersistentFlags()
	p.String("config", "", "configuration file (YAML); default $KVFLOW_CONFIG, else $XDG_CONFIG_HOME/kvflow/config.yaml when it exists")
	p.String("log-format", "", "log format: text or json (env KVFLOW_LOG_FORMAT; default text)")
	p.String("log-level", "", "lowest level logged: debug, info, warn or error (env KVFLOW_LOG_LEVEL; default info)")
	for _, sub := range subcommands {
		root.AddCommand(sub())
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd, err: err}
	})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	strictHelp(root)
	strictArgs(root)
	return root
}

// strictArgs makes every argument mistake a usage error, at every level: a
// command that only groups others (kvflow, kv, task, …) rejects an unknown
// subcommand with suggestions instead of printing its help and succeeding.
func strictArgs(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		strictArgs(sub)
	}
	if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args = unknownSubcommand
		cmd.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	}
	check := cmd.Args
	if check == nil {
		check = cobra.ArbitraryArgs
	}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			var usage *usageError
			if errors.As(err, &usage) {
				return err
			}
			return &usageError{cmd: cmd, err: err, showUsage: true}
		}
		return nil
	}
}

// strictHelp makes `kvflow help TOPIC` fail as the command would when
// TOPIC is not a command.
func strictHelp(root *cobra.Command) {
	for _, h := range root.Commands() {
		if h.Name() != "help" {
			continue
		}
		h.Run = nil
		h.RunE = func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				parent := cmd
				if parent == nil {
					parent = c.Root()
				}
				return unknownSubcommand(parent, rest)
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		}
	}
}

// unknownSubcommand accepts no argument, naming the closest subcommands.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	err := &usageError{cmd: cmd, err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	err.suggestions = cmd.SuggestionsFor(args[0])
	return err
}

// usageError is a mistake in the command line: exit status 2, printed the
// way cobra prints it, with what helps fix it.
type usageError struct {
	cmd         *cobra.Command
	err         error
	suggestions []string
	showUsage   bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func (e *usageError) print(w io.Writer, args []string) {
	fmt.Fprintf(w, "Error: %v\n", e.err)
	if len(e.suggestions) > 0 {
		fmt.Fprintf(w, "\nDid you mean this?\n")
		for _, s := range e.suggestions {
			fmt.Fprintf(w, "\t%s\n", s)
		}
		fmt.Fprintln(w)
	}
	if near := nearFlag(e.cmd, e.err); near != "" {
		fmt.Fprintf(w, "\nDid you mean this?\n\t--%s\n\n", near)
	}
	if bad := flagLike(e.err); bad != "" {
		fmt.Fprintf(w, "If %q is a value and not a flag, put it after \"--\", which ends the flags:\n  %s\n", bad, dashDash(e.cmd, args, bad))
	}
	if e.showUsage {
		fmt.Fprintf(w, "Usage: %s\n", e.cmd.UseLine())
	}
	fmt.Fprintf(w, "Run '%s --help' for usage.\n", e.cmd.CommandPath())
}

// flagLike returns the argument an unknown-flag error is about when it looks
// like a value that starts with '-' (-5, -1.5, -) rather than a mistyped flag.
func flagLike(err error) string {
	msg := err.Error()
	arg := ""
	if rest, ok := strings.CutPrefix(msg, "unknown shorthand flag: "); ok {
		_, arg, _ = strings.Cut(rest, " in ") // unknown shorthand flag: '5' in -5
	}
	if len(arg) > 1 && arg[0] == '-' && arg[1] != '-' && !unicode.IsLetter(rune(arg[1])) {
		return arg
	}
	return ""
}

// nearFlag is the flag of cmd closest to the unknown long flag err is about
// (at most two edits away), or "".
func nearFlag(cmd *cobra.Command, err error) string {
	typed, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	typed, _, _ = strings.Cut(typed, "=")
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return kvflow.Nearest(typed, names)
}

// dashDash is the command line with "--" put before the argument bad.
func dashDash(cmd *cobra.Command, args []string, bad string) string {
	out := []string{cmd.Root().Name()}
	done := false
	for _, a := range args {
		if !done && (a == bad || strings.HasPrefix(a, bad+"=")) {
			out = append(out, "--")
			done = true
		}
		out = append(out, quoteArg(a))
	}
	return strings.Join(out, " ")
}

func quoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'$\\|&;<>()*?[]{}!#~`") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// hintFor tells a CLI user how to fix what the error is about, when the
// error's message cannot (it was written for every kind of client).
func hintFor(err error) string {
	if kvflow.ErrorCode(err) == kvflow.EUNAUTHORIZED {
		return "Give the server's token with --token or $KVFLOW_API_TOKEN."
	}
	return ""
}

// versionString is the stamped version and commit, else what the Go
// toolchain recorded (a module version for go install …@v1.2.0, the VCS
// revision for a build from a checkout).
func versionString() string {
	v, c, dirty := version, commit, false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.modified" && commit == "":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if c == "" {
		return v
	}
	if dirty {
		c += "-dirty"
	}
	return v + " (commit " + c + ")"
}

// loadConfig reads the configuration: defaults, the file (see
// config.Discover), then the environment.
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

// exitCode maps an error to the process exit status of exitCodes.
func exitCode(err error) int {
	var exit exitError
	var usage *usageError
	if errors.As(err, &exit) {
		return exit.code
	} else if errors.As(err, &usage) {
		return 2
	}
	switch kvflow.ErrorCode(err) {
	case kvflow.EINVALID, kvflow.ETOOLARGE:
		return 2
	case kvflow.ENOTFOUND, kvflow.EEXPIRED:
		return 3
	case kvflow.EUNAVAILABLE, kvflow.ETIMEOUT:
		return 4
	case kvflow.EUNAUTHORIZED, kvflow.EFORBIDDEN:
		return 5
	case kvflow.ECONFLICT, kvflow.EPRECONDITION:
		return 6
	}
	return 1
}
