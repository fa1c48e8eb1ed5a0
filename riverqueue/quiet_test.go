package riverqueue

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// River's warnings reach the log, except that a job appears stuck: every
// execution running past the heartbeat timeout would say so. Loggers
// derived with attributes filter alike.
func TestQuiet_KeepsWarningsButNotStuckJobs(t *testing.T) {
	var buf bytes.Buffer
	l := quiet(slog.New(slog.NewTextHandler(&buf, nil))).With("client", "c1")
	l.Info("producer: started")
	l.Warn("JobExecutor: Job appears to be stuck", "job_id", 1)
	l.Warn("elector: lost leadership")
	out := buf.String()
	if strings.Contains(out, "started") || strings.Contains(out, "stuck") {
		t.Errorf("logged what quiet drops:\n%s", out)
	}
	if !strings.Contains(out, "lost leadership") || !strings.Contains(out, "client=c1") {
		t.Errorf("dropped a warning:\n%s", out)
	}
}
