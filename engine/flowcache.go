package engine

import (
	"sync"

	"github.com/kvflow/kvflow"
)

// flowCache keeps recent parses of stored flows: parsing (YAML, then every
// template compiled) is most of what starting an execution of a stored flow
// costs in CPU.
type flowCache struct {
	mu sync.Mutex
	m  map[string]*Flow // file, NUL, source → the parse
}

const flowCacheSize = 256

// ParseStored parses a stored flow named file (its errors name it), from a
// cache keyed by the source: the Flow returned is a copy the caller may
// change (Revision, Scope, KVSnapshot…); its tasks are shared, as they are
// between the branches of one execution.
func (e *Engine) ParseStored(file string, rec kvflow.FlowRecord) (*Flow, error) {
	key := file + "\x00" + rec.Source
	c := &e.flows
	c.mu.Lock()
	f := c.m[key]
	c.mu.Unlock()
	if f == nil {
		var err error
		if f, err = Parse(file, []byte(rec.Source), e.reg); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= flowCacheSize {
			c.m = map[string]*Flow{} // start again: flows change rarely
		}
		c.m[key] = f
		c.mu.Unlock()
	}
	cp := *f
	cp.Revision = rec.Revision
	return &cp, nil
}
