package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow/client"
)

// serverFlags name a kvflow server: --server (or $KVFLOW_SERVER, the
// variable the Terraform provider reads too) and --token (or
// $KVFLOW_API_TOKEN).
type serverFlags struct {
	server string
	token  string
}

func (f *serverFlags) add(cmd *cobra.Command, usage string) {
	p := cmd.PersistentFlags()
	p.StringVar(&f.server, "server", "", usage)
	p.StringVar(&f.token, "token", "", "API token for the server (env KVFLOW_API_TOKEN)")
}

// url is the server's base URL: the flag, else $KVFLOW_SERVER (or
// $KVFLOW_ENDPOINT), else def
// ("" when the local store is the default).
func (f *serverFlags) url(def string) (string, error) {
	raw := f.server
	if raw == "" {
		raw = os.Getenv("KVFLOW_SERVER")
	}
	if raw == "" {
		raw = os.Getenv("KVFLOW_ENDPOINT") // the Terraform provider's former name
	}
	if raw == "" {
		raw = def
	}
	if raw == "" {
		return "", nil
	}
	return client.ServerURL(raw)
}

// client returns a client of the server, or nil when none is named and def
// is "".
func (f *serverFlags) client(def string) (*client.Client, error) {
	base, err := f.url(def)
	if err != nil || base == "" {
		return nil, err
	}
	token := f.token
	if token == "" {
		token = os.Getenv("KVFLOW_API_TOKEN")
	}
	return client.NewClient(base, token), nil
}

// defaultServer is where flow and execution commands go without --server.
const defaultServer = "http://127.0.0.1:8080"
