package storage

import (
	"context"
	"io"
	"sync"
	"time"
)

// Write intents: every value object is named by a kv_intents row from before
// it can be seen in the bucket until the metadata write that points at it
// consumes the row, so that garbage collection finds what a failed or crashed
// write left by reading the database (CollectGarbage), never by listing the
// bucket.
//
// A whole value takes a name whose intent is already recorded, from a small
// per-namespace pool reserved ahead in one statement (names), so a write pays
// no statement for its intent; with the pool empty it records one while it
// uploads. A stream records its intent before it starts and renews it.

// intentRenewal is how often a stream renews its write intent (a variable
// for tests).
var intentRenewal = DefaultGCGrace / 5

// ReservedFor is how long a reserved name may be handed out. Its intent is
// dated at the end of that time, not at the reservation, so garbage
// collection with any grace never takes a name a writer may still use, and a
// write under a reserved name gets at least the grace, as any other, to
// commit. A name left unused (a process that stopped or went idle) is
// collected ReservedFor plus the grace after its reservation.
const ReservedFor = 30 * time.Second

// maxReserved bounds one reservation. A namespace's first write reserves
// nothing (a one-shot command writes once); from its second on, its pool
// doubles, from one name, each time it runs low within ReservedFor, and starts
// again at one when names expire unused, so a quiet namespace leaves at most
// a few unused intents and a busy one reserves its writes 64 at a time.
const maxReserved = 64

// names hands out reserved object names, per namespace.
type names struct {
	mu    sync.Mutex
	pools map[string]*namePool
}

type namePool struct {
	free    []string
	until   time.Time // when free's names stop being handed out
	next    int       // the size of the next reservation
	filling bool
}

// takeName returns a reserved name of ns, or false when none is left, and
// starts a reservation when the pool is down to a quarter of the next
// reservation's size (from the namespace's second write on).
func (s *Store) takeName(ns string) (string, bool) {
	n := &s.names
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.pools[ns]
	if p == nil {
		if n.pools == nil {
			n.pools = map[string]*namePool{}
		}
		n.pools[ns] = &namePool{next: 1}
		return "", false
	}
	now := time.Now()
	if len(p.free) > 0 && !now.Before(p.until) {
		p.free, p.next = nil, 1 // left for garbage collection
	}
	name, ok := "", false
	if k := len(p.free); k > 0 {
		name, ok = p.free[k-1], true
		p.free = p.free[:k-1]
	}
	if len(p.free) <= p.next/4 && !p.filling { // refilled before it runs dry
		p.filling = true
		size := p.next
		p.next = min(2*p.next, maxReserved)
		go s.reserve(ns, p, size)
	}
	return name, ok
}

// reserve records size intents of fresh names of ns and adds them to p.
func (s *Store) reserve(ns string, p *namePool, size int) {
	intents := make([]Intent, size)
	for i := range intents {
		intents[i] = Intent{Namespace: ns, Object: ObjectName(ns)}
	}
	until := time.Now().Add(ReservedFor)
	err := s.index.AddIntents(context.Background(), until, intents)
	if pr, ok := s.bucket.(Preparer); ok && err == nil {
		names := make([]string, len(intents))
		for i, in := range intents {
			names[i] = in.Object
		}
		pr.Prepare(context.Background(), names)
	}
	s.names.mu.Lock()
	defer s.names.mu.Unlock()
	p.filling = false
	if err != nil {
		p.next = 1
		s.log.Debug("kv: cannot reserve object names", "namespace", ns, "err", err)
		return
	}
	for _, in := range intents {
		p.free = append(p.free, in.Object)
	}
	p.until = until
}

// renewIntent renews a stream's intent every intentRenewal until stop; the
// returned context ends, with cause ErrIntentGone, if the intent was taken.
func (s *Store) renewIntent(ctx context.Context, in Intent) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(intentRenewal)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if ok, err := s.index.RenewIntent(ctx, in, time.Now()); err == nil && !ok {
					cancel(ErrIntentGone)
					return
				} else if err != nil {
					s.log.Warn("kv: cannot renew a stream's write intent", "object", in.Object, "err", err)
				}
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// recordIntents records intents in the background; the returned function
// waits for that and may be called many times (it returns the same error).
func (s *Store) recordIntents(ctx context.Context, intents []Intent) func() error {
	recorded := make(chan error, 1)
	go func() { recorded <- s.index.AddIntents(ctx, time.Now(), intents) }()
	return sync.OnceValue(func() error {
		if err := <-recorded; err != nil {
			return intentError{err}
		}
		return nil
	})
}

// intentError is an intent that could not be recorded, as a bucket returns it.
type intentError struct{ err error }

func (e intentError) Error() string { return "record write intent: " + e.err.Error() }
func (e intentError) Unwrap() error { return e.err }

// gate makes a whole value's last byte wait for its write intent, so that an
// object store, which shows an object only once its upload completes, never
// holds one that no entry, version, queued garbage or intent names. A bucket
// that writes in place (a local directory) shows the file from its first byte,
// so there the wait would add latency and buy nothing: the caller waits after
// the upload instead, and a crash in between leaves a file for SweepOrphans.
func (s *Store) gate(r io.ReadSeeker, size int64, wait func() error) io.Reader {
	if b, ok := s.bucket.(interface{ WritesInPlace() bool }); ok && b.WritesInPlace() {
		return r
	}
	return &gatedBody{r: r, size: size, left: size, wait: wait}
}

// gatedBody is a whole value's bytes whose last byte is read only once wait
// succeeds.
type gatedBody struct {
	r          io.ReadSeeker
	size, left int64
	wait       func() error // nil once it succeeded
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if g.wait != nil && int64(len(p)) >= g.left {
		if err := g.wait(); err != nil {
			return 0, err
		}
		g.wait = nil
	}
	n, err := g.r.Read(p)
	g.left -= int64(n)
	return n, err
}

func (g *gatedBody) Seek(offset int64, whence int) (int64, error) {
	pos, err := g.r.Seek(offset, whence)
	g.left = g.size - pos
	return pos, err
}
