package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// progress counts the lines going through an export or an import and, on
// a terminal, redraws one status line with the count and the rate every
// 200ms; elsewhere it stays quiet (the command prints its totals at the end).
type progress struct {
	verb  string // "Exported", "Read"
	lines atomic.Int64
	began time.Time
	out   io.Writer
	stop  chan struct{}
	done  chan struct{}
}

// startProgress starts the status line when out is a terminal.
func startProgress(out io.Writer, verb string) *progress {
	f, ok := out.(*os.File)
	if ok {
		fi, err := f.Stat()
		ok = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return newProgress(out, verb, ok)
}

func newProgress(out io.Writer, verb string, draw bool) *progress {
	p := &progress{verb: verb, began: time.Now(), out: out}
	if draw {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.draw()
	}
	return p
}

func (p *progress) draw() {
	defer close(p.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.line()
			fmt.Fprintln(p.out)
			return
		case <-t.C:
			p.line()
		}
	}
}

func (p *progress) line() {
	n := p.lines.Load()
	rate := float64(n) / max(time.Since(p.began).Seconds(), 1e-3)
	fmt.Fprintf(p.out, "\r%s %d entries (%.0f/s)\x1b[K", p.verb, n, rate)
}

// Stop ends the status line.
func (p *progress) Stop() {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
}

// Writer counts the lines written through it to w.
func (p *progress) Writer(w io.Writer) io.Writer { return countingWriter{w, p} }

// Reader counts the lines read through it from r.
func (p *progress) Reader(r io.Reader) io.Reader { return countingReader{r, p} }

type countingWriter struct {
	w io.Writer
	p *progress
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.count(b[:n])
	return n, err
}

type countingReader struct {
	r io.Reader
	p *progress
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.count(b[:n])
	return n, err
}

func (p *progress) count(b []byte) {
	var n int64
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	if n > 0 {
		p.lines.Add(n)
	}
}
