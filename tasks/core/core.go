// Package core holds the small built-in tasks: io.kestra.plugin.core.log.Log,
// io.kestra.plugin.core.debug.Return and io.kestra.plugin.core.http.Download.
// Each registers itself in plugin.Default.
package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/plugin"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/template"
)

// Type names, as Kestra spells them.
const (
	LogType      = "io.kestra.plugin.core.log.Log"
	ReturnType   = "io.kestra.plugin.core.debug.Return"
	DownloadType = "io.kestra.plugin.core.http.Download"
	SleepType    = "io.kestra.plugin.core.flow.Sleep"
)

func init() {
	for _, d := range []plugin.Definition{
		{Type: LogType, New: func() plugin.Task { return &Log{} },
			Description: "Write a message, or each message of a list, to the execution's logs."},
		{Type: ReturnType, New: func() plugin.Task { return &Return{} },
			Description: "Render a template and return it as the output value."},
		{Type: DownloadType, New: func() plugin.Task { return &Download{} },
			Description: "Download a file over HTTP into the execution's object storage."},
		{Type: SleepType, New: func() plugin.Task { return &Sleep{} },
			Description: "Wait for a duration (ISO-8601), or until the execution is killed."},
	} {
		plugin.Default.MustRegister(d)
	}
}

// invalid is a property error: it names the property.
func invalid(prop, format string, args ...any) error {
	return kvflow.Errorf(kvflow.EINVALID, "%s: %s", prop, fmt.Sprintf(format, args...))
}

// propErr names the task and the property in a run-time error, keeping its
// code, as plugin.Property.Get does.
func propErr(rc *plugin.RunContext, prop string, err error) error {
	if rc.TaskID == "" {
		return &kvflow.Error{Code: kvflow.ErrorCode(err), Message: fmt.Sprintf("Property '%s': %s", prop, kvflow.ErrorMessage(err)), Err: err}
	}
	return template.Wrap(err, rc.TaskID, prop)
}

// renderText renders a raw property value as text, the way Kestra renders a
// String property: a template string is rendered to text (a lone expression
// giving a map prints as JSON), other scalars print as they would in a KV.
func renderText(ctx context.Context, rc *plugin.RunContext, prop string, raw any) (string, error) {
	switch x := raw.(type) {
	case nil:
		return "", nil
	case string:
		if !plugin.Of[string](x).IsTemplate() {
			return x, nil
		}
		s, err := rc.Render(ctx, x)
		if err != nil {
			return "", propErr(rc, prop, err)
		}
		return s, nil
	}
	v, err := storage.FromGo(raw)
	if err != nil {
		return "", propErr(rc, prop, err)
	}
	return v.Text(), nil
}

func joinErrors(errs ...error) error { return errors.Join(errs...) }
