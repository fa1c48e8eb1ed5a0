// Package logtest records slog records for tests that check what was logged.
package logtest

import (
	"context"
	"log/slog"
	"sync"
)

// Line is one record's level and message.
type Line struct {
	Level slog.Level
	Msg   string
}

// Sink is a slog.Handler keeping every record's level and message.
type Sink struct {
	mu    sync.Mutex
	lines []Line
}

// Lines returns what was logged so far, in order.
func (s *Sink) Lines() []Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Line(nil), s.lines...)
}

func (s *Sink) Enabled(context.Context, slog.Level) bool { return true }

func (s *Sink) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, Line{r.Level, r.Message})
	return nil
}

func (s *Sink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *Sink) WithGroup(string) slog.Handler      { return s }
