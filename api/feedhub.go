package api

import (
	"context"
	"sync"
	"time"

	"github.com/kvflow/kvflow/storage"
)

// feedHub wakes the watches of a namespace when its change feed moves,
// for changes other processes make (this process's own writes wake them
// through Store.Wrote): while watches are open, one goroutine reads the
// heads of every watched feed each watchPoll, in one statement, where each
// watch read its own feed.
type feedHub struct {
	store *storage.Store

	mu      sync.Mutex
	subs    map[string]map[chan struct{}]struct{} // namespace → its watches' wake-ups
	fresh   map[string]bool                       // namespaces subscribed to since the last read
	heads   map[string]int64
	running bool
}

// subscribe returns a channel that receives when ns's feed may have moved,
// and the func that ends the subscription. A watch subscribes before its
// first read: a change after that read either moves the head the next poll
// reads or comes before it, when the poll wakes every new subscriber.
func (h *feedHub) subscribe(ctx context.Context, ns string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs, h.fresh, h.heads = map[string]map[chan struct{}]struct{}{}, map[string]bool{}, map[string]int64{}
	}
	if h.subs[ns] == nil {
		h.subs[ns] = map[chan struct{}]struct{}{}
	}
	h.subs[ns][ch] = struct{}{}
	h.fresh[ns] = true
	if !h.running {
		h.running = true
		go h.loop(context.WithoutCancel(ctx))
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[ns], ch)
		if len(h.subs[ns]) == 0 {
			delete(h.subs, ns)
			delete(h.heads, ns)
		}
	}
}

// loop polls the watched heads until no watch is left.
func (h *feedHub) loop(ctx context.Context) {
	for {
		time.Sleep(watchPoll)
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		nss := make([]string, 0, len(h.subs))
		for ns := range h.subs {
			nss = append(nss, ns)
		}
		fresh := h.fresh
		h.fresh = map[string]bool{}
		h.mu.Unlock()

		heads, err := h.store.FeedHeads(ctx, nss)
		h.mu.Lock()
		for _, ns := range nss {
			head, ok := heads[ns]
			moved := err != nil || fresh[ns] || head != h.heads[ns] // on an error, each watch reads and reports it
			if ok {
				h.heads[ns] = head
			}
			if !moved {
				continue
			}
			for ch := range h.subs[ns] {
				select {
				case ch <- struct{}{}:
				default: // already woken
				}
			}
		}
		h.mu.Unlock()
	}
}
