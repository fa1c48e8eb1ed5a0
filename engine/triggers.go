package engine

import (
	"log/slog"
)

// Triggers runs the trigger loops of a worker process.
type Triggers struct {
	stop chan struct{}
	done chan struct{}
}

// StartTriggers starts the trigger loops on eng.
func StartTriggers(eng *Engine, repo Repository, logger *slog.Logger) *Triggers {
	t := &Triggers{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		<-t.stop
	}()
	return t
}

// Stop ends the loops and waits for them.
func (t *Triggers) Stop() {
	close(t.stop)
	<-t.done
}
