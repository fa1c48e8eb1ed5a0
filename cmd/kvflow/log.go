package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/kvflow/kvflow"
)

// newLogger is the one logger of every command: --log-format text (the
// default: "15:04:05.000 INFO  [task] message key=value") or json (one
// slog JSON object a line), from --log-level up.
func newLogger(cmd *cobra.Command, w io.Writer) (*slog.Logger, error) {
	format, _ := cmd.Flags().GetString("log-format")
	formatFrom := "--log-format"
	if format == "" {
		format, formatFrom = os.Getenv("KVFLOW_LOG_FORMAT"), "KVFLOW_LOG_FORMAT"
	}
	levelText, _ := cmd.Flags().GetString("log-level")
	from := "--log-level"
	if levelText == "" {
		levelText, from = os.Getenv("KVFLOW_LOG_LEVEL"), "KVFLOW_LOG_LEVEL"
	}
	level := slog.LevelInfo
	if levelText != "" {
		if err := level.UnmarshalText([]byte(levelText)); err != nil {
			return nil, kvflow.Errorf(kvflow.EINVALID, "%s %q is unknown: expected debug, info, warn or error.", from, levelText)
		}
	}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(&textHandler{w: w, mu: &sync.Mutex{}, level: level}), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	}
	return nil, kvflow.Errorf(kvflow.EINVALID, "%s %q is unknown: expected text or json.", formatFrom, format)
}

// textHandler writes "15:04:05.000 INFO  [task] message key=value" lines; a
// "task" attribute becomes the [task] prefix.
type textHandler struct {
	w      io.Writer
	mu     *sync.Mutex
	level  slog.Leveler
	attrs  []slog.Attr
	prefix string // group names, dotted
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Time.Local().Format("15:04:05.000"))
	level := r.Level.String()
	if level == "WARN" {
		level = "WARN "
	}
	fmt.Fprintf(&b, " %-5s ", level)
	var rest []slog.Attr
	task := ""
	add := func(a slog.Attr) bool {
		if a.Key == "task" && h.prefix == "" {
			task = a.Value.String()
		} else if !a.Equal(slog.Attr{}) {
			rest = append(rest, a)
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if task != "" {
		b.WriteString("[" + task + "] ")
	}
	b.WriteString(r.Message)
	for _, a := range rest {
		writeAttr(&b, h.prefix, a)
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		v = strconv.Quote(v)
	}
	b.WriteString(" " + prefix + a.Key + "=" + v)
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if h.prefix != "" {
			a.Key = h.prefix + a.Key
		}
		c.attrs = append(append([]slog.Attr{}, c.attrs...), a)
	}
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix += name + "."
	return &c
}
