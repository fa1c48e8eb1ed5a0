package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
)

// Shell completion (kvflow completion bash|zsh|fish|powershell) offers
// namespaces, keys, flow ids and task types, read from the server when one
// is named (--server, $KVFLOW_SERVER) and from the local store otherwise.
// A source that cannot be read completes nothing.

const completionTimeout = 3 * time.Second

type completeFunc = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

// namespaces lists the namespaces holding keys or flows.
func namespaces(cmd *cobra.Command, sf *serverFlags, def string) []string {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	if c, err := sf.client(def); err != nil {
		return nil
	} else if c != nil {
		list, err := c.Namespaces(ctx)
		if err != nil {
			return nil
		}
		out := make([]string, len(list))
		for i, ns := range list {
			out[i] = ns.ID
		}
		return out
	}
	a, err := openCompletionApp(cmd, ctx)
	if err != nil {
		return nil
	}
	defer a.Close()
	stats, err := a.Store.Namespaces(ctx)
	if err != nil {
		return nil
	}
	out := make([]string, len(stats))
	for i, s := range stats {
		out[i] = s.Namespace
	}
	return out
}

func openCompletionApp(cmd *cobra.Command, ctx context.Context) (*app.App, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	return app.Open(ctx, cfg)
}

// keys lists the live keys of ns starting with prefix.
func keys(cmd *cobra.Command, sf *serverFlags, ns, prefix string) []string {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	if c, err := sf.client(""); err != nil {
		return nil
	} else if c != nil {
		out, _ := c.Keys(ctx, ns, prefix)
		return out
	}
	a, err := openCompletionApp(cmd, ctx)
	if err != nil {
		return nil
	}
	defer a.Close()
	page, err := a.Store.List(ctx, ns, storage.ListOptions{Prefix: prefix, Limit: storage.MaxListLimit})
	if err != nil {
		return nil
	}
	out := make([]string, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = e.Key
	}
	return out
}

// completeKVArgs completes NAMESPACE then KEY.
func completeKVArgs(sf *serverFlags, withKey bool) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		switch {
		case len(args) == 0:
			return prefixed(namespaces(cmd, sf, ""), toComplete), cobra.ShellCompDirectiveNoFileComp
		case len(args) == 1 && withKey:
			return keys(cmd, sf, args[0], toComplete), cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFlowArgs completes NAMESPACE then FLOW_ID from the server.
func completeFlowArgs(sf *serverFlags) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return prefixed(namespaces(cmd, sf, defaultServer), toComplete), cobra.ShellCompDirectiveNoFileComp
		case 1:
			c, err := sf.client(defaultServer)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
			defer cancel()
			flows, err := c.Flows(ctx, args[0])
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var ids []string
			for _, f := range flows {
				ids = append(ids, f.ID)
			}
			return prefixed(ids, toComplete), cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNamespaceFlag completes a --namespace flag.
func completeNamespaceFlag(sf *serverFlags, def string) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return prefixed(namespaces(cmd, sf, def), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeTaskTypes completes a task type.
func completeTaskTypes(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return prefixed(plugin.Default.Types(), toComplete), cobra.ShellCompDirectiveNoFileComp
}

func prefixed(all []string, prefix string) []string {
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
