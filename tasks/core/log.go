package core

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
)

// LevelTrace is below slog.LevelDebug, for Kestra's TRACE.
const LevelTrace = slog.LevelDebug - 4

// Log writes to the execution's logs: io.kestra.plugin.core.log.Log.
//
// message is a string or a list of strings, each rendered and logged as its
// own line; level is TRACE, DEBUG, INFO (default), WARN or ERROR. No output.
type Log struct {
	Message plugin.Property[any]    `yaml:"message" required:"true"`
	Level   plugin.Property[string] `yaml:"level"`
}

// Validate checks the literal properties when the flow loads.
func (t *Log) Validate() error {
	var errs []error
	switch x := t.Message.Raw().(type) {
	case nil:
		errs = append(errs, invalid("message", "the property is required: a string or a list of strings."))
	case []any:
		for i, e := range x {
			switch e.(type) {
			case map[string]any, []any, nil:
				errs = append(errs, invalid("message", "item %d: expected a string, got %s.", i, kind(e)))
			}
		}
	case map[string]any:
		errs = append(errs, invalid("message", "expected a string or a list of strings, got a map."))
	}
	if lv, ok := t.Level.Raw().(string); ok && !t.Level.IsTemplate() {
		if _, err := parseLevel(lv); err != nil {
			errs = append(errs, invalid("level", "%s", kvflow.ErrorMessage(err)))
		}
	} else if err := t.Level.Check(); err != nil {
		errs = append(errs, err)
	}
	return joinErrors(errs...)
}

// Run renders each message and logs it.
func (t *Log) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	lvText, err := t.Level.Get(ctx, rc, "INFO")
	if err != nil {
		return nil, err
	}
	level, err := parseLevel(lvText)
	if err != nil {
		return nil, propErr(rc, "level", err)
	}
	raws, ok := t.Message.Raw().([]any)
	if !ok {
		raws = []any{t.Message.Raw()}
	}
	lines := make([]string, len(raws))
	for i, raw := range raws {
		prop := "message"
		if ok {
			prop = fmt.Sprintf("message[%d]", i)
		}
		if lines[i], err = renderText(ctx, rc, prop, raw); err != nil {
			return nil, err
		}
	}
	// Render all first, so a failing template logs nothing rather than half.
	for _, line := range lines {
		rc.Log(ctx, level, line)
	}
	return nil, nil
}

// parseLevel reads a Kestra log level, case-insensitively.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE":
		return LevelTrace, nil
	case "DEBUG":
		return slog.LevelDebug, nil
	case "", "INFO":
		return slog.LevelInfo, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return 0, kvflow.Errorf(kvflow.EINVALID, "%q is not a log level; expected TRACE, DEBUG, INFO, WARN or ERROR.", s)
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

// Return renders a template as an output: io.kestra.plugin.core.debug.Return.
//
// Output: value, format rendered to text (null when format is unset).
type Return struct {
	Format plugin.Property[any] `yaml:"format"`
}

// Validate checks the literal properties when the flow loads.
func (t *Return) Validate() error {
	switch x := t.Format.Raw().(type) {
	case map[string]any, []any:
		return invalid("format", "expected a string, got %s.", kind(x))
	}
	return nil
}

// Run renders format.
func (t *Return) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	if !t.Format.IsSet() {
		return plugin.Outputs{"value": nil}, nil
	}
	s, err := renderText(ctx, rc, "format", t.Format.Raw())
	if err != nil {
		return nil, err
	}
	return plugin.Outputs{"value": s}, nil
}
