package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// On a terminal the status line is redrawn with the lines counted so far
// and a rate; elsewhere nothing is drawn.
func TestProgress_CountsLinesAndDrawsOnlyOnATerminal(t *testing.T) {
	for _, term := range []bool{true, false} {
		var status lockedBuffer
		p := newProgress(&status, "Exported", term)
		var out bytes.Buffer
		w := p.Writer(&out)
		io.WriteString(w, "{\"key\":\"a\"}\n{\"key\":\"b\"}\n")
		io.WriteString(w, "{\"key\":\"c\"}\n")
		time.Sleep(300 * time.Millisecond)
		r := p.Reader(strings.NewReader("x\ny\n"))
		io.ReadAll(r)
		p.Stop()
		if got := p.lines.Load(); got != 5 {
			t.Errorf("term=%v: %d lines counted, want 5", term, got)
		}
		s := status.String()
		last := s[max(strings.LastIndex(s, "\r"), 0):]
		if term && (!strings.Contains(s, "\rExported 3 entries (") || !strings.HasPrefix(last, "\rExported 5 entries (")) {
			t.Errorf("terminal status = %q, want redraws with 3 then 5 entries", s)
		}
		if !term && s != "" {
			t.Errorf("status off a terminal = %q, want nothing", s)
		}
		if out.Len() == 0 {
			t.Error("the writer lost its lines")
		}
	}
}
