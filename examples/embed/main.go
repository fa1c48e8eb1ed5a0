// Command embed shows kvflow's engine inside another Go program: it opens
// the embedded default storage (SQLite + a local directory) in a temporary
// directory, registers a custom task type, and runs a flow that uses it
// next to the built-in KV tasks.
//
//	go run ./examples/embed
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/kvflow/kvflow/app"
	"github.com/kvflow/kvflow/config"
	"github.com/kvflow/kvflow/engine"
	"github.com/kvflow/kvflow/plugin"
	_ "github.com/kvflow/kvflow/tasks/all" // the built-in task types
)

// Greet is a custom task type. Its yaml-tagged fields are the task's
// properties; Property fields may hold templates, rendered by Get.
type Greet struct {
	Name  plugin.Property[string] `yaml:"name" required:"true"`
	Shout plugin.Property[bool]   `yaml:"shout"`
}

// Validate runs when the flow loads: errors name the property.
func (g *Greet) Validate() error {
	if s, ok := g.Name.Raw().(string); ok && strings.TrimSpace(s) == "" {
		return fmt.Errorf("name: must not be blank")
	}
	return nil
}

// Run renders the properties, logs a line and returns the outputs that later
// tasks reach as outputs.<taskId>.greeting.
func (g *Greet) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	name, err := g.Name.Get(ctx, rc, "")
	if err != nil {
		return nil, err
	}
	shout, err := g.Shout.Get(ctx, rc, false)
	if err != nil {
		return nil, err
	}
	greeting := "Hello, " + name + "!"
	if shout {
		greeting = strings.ToUpper(greeting)
	}
	rc.Log(ctx, slog.LevelInfo, greeting)
	return plugin.Outputs{"greeting": greeting}, nil
}

const flowYAML = `
id: greet
namespace: company.team
inputs:
  - id: name
    type: STRING
tasks:
  - id: greet
    type: com.example.Greet
    name: "{{ inputs.name }}"
    shout: true
  - id: remember
    type: io.kestra.plugin.core.kv.Set
    key: last_greeting
    value: "{{ outputs.greet.greeting }}"
outputs:
  - id: stored
    value: "{{ kv('last_greeting') }}"
`

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	plugin.Default.MustRegister(plugin.Definition{
		Type:        "com.example.Greet",
		New:         func() plugin.Task { return &Greet{} },
		Description: "Greets someone by name.",
	})

	dir, err := os.MkdirTemp("", "kvflow-embed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Config{DataDir: dir}
	cfg.Defaults()
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()

	eng := engine.New(engine.Options{Store: a.Store, Bucket: a.Bucket, Repo: a.DB, Policy: cfg.Policy(), HTTPClient: cfg.HTTPClient()})
	defer eng.Shutdown(ctx)

	flow, err := engine.Parse("greet.yaml", []byte(flowYAML), plugin.Default)
	if err != nil {
		return err // engine.ValidationErrors: one line per problem
	}
	ex, err := eng.Run(ctx, flow, map[string]any{"name": "kvflow"}, engine.RunOptions{
		OnLog: func(l engine.LogLine) { fmt.Printf("log [%s] %s\n", l.TaskID, l.Message) },
	})
	if err != nil {
		return err
	}
	fmt.Printf("state %s, stored %v\n", ex.State, ex.Outputs["stored"])
	if ex.State != engine.SUCCESS {
		return fmt.Errorf("execution %s: %s", ex.State, ex.Error)
	}
	return nil
}
