package core

import (
	"context"
	"time"

	"github.com/kvflow/kvflow/plugin"
)

// Sleep waits: io.kestra.plugin.core.flow.Sleep. duration is ISO-8601
// (PT5S); a kill ends the wait at once. No output.
type Sleep struct {
	Duration plugin.Property[time.Duration] `yaml:"duration" required:"true"`
}

// Validate checks a literal duration when the flow loads.
func (t *Sleep) Validate() error {
	if d, ok := t.Duration.Raw().(string); ok && !t.Duration.IsTemplate() && d == "" {
		return invalid("duration", "the property is required: an ISO-8601 duration such as PT5S.")
	}
	return t.Duration.Check()
}

// Run waits for the duration or until ctx ends.
func (t *Sleep) Run(ctx context.Context, rc *plugin.RunContext) (plugin.Outputs, error) {
	d, err := t.Duration.Get(ctx, rc, 0)
	if err != nil {
		return nil, err
	}
	if d < 0 {
		return nil, invalid("duration", "expected a positive duration, not %s.", d)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
