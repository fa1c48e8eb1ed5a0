package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/internal/taskrun"
	"github.com/kvflow/kvflow/storage"
)

// KVTrigger starts an execution for each change of the KV store that
// matches it, read from the namespace's change feed.
const KVTrigger = "io.kvflow.kv.Trigger"

// KVSpec is a KV trigger: changes of Namespace (the flow's when empty) to
// Key, or to keys starting with Prefix, of the kinds in On.
type KVSpec struct {
	Namespace   string
	Key, Prefix string
	On          []storage.ChangeKind
}

// Matches reports whether the change is one the trigger fires on.
func (s *KVSpec) Matches(c storage.Change) bool {
	if (s.Key != "" && c.Key != s.Key) || !strings.HasPrefix(c.Key, s.Prefix) {
		return false
	}
	for _, k := range s.On {
		if k == c.Change {
			return true
		}
	}
	return false
}

type kvTriggerSpec struct {
	ID          string         `yaml:"id" required:"true"`
	Type        string         `yaml:"type" required:"true"`
	Description string         `yaml:"description"`
	Disabled    bool           `yaml:"disabled"`
	Inputs      map[string]any `yaml:"inputs"`
	Namespace   string         `yaml:"namespace"`
	Key         string         `yaml:"key"`
	Prefix      string         `yaml:"prefix"`
	On          []string       `yaml:"on"`
}

func decodeKVTrigger(n *yaml.Node, path string) (any, []kvflow.FieldError) {
	var s kvTriggerSpec
	errs := taskrun.DecodeStrict(n, &s, path)
	lines := keyLines(n)
	out := &KVSpec{Namespace: s.Namespace, Key: s.Key, Prefix: s.Prefix}
	if s.Namespace != "" {
		if err := storage.ValidateNamespace(s.Namespace); err != nil {
			errs = append(errs, fieldErr(lines["namespace"], path+".namespace", "%s", kvflow.ErrorMessage(err)))
		}
	}
	switch {
	case s.Key != "" && s.Prefix != "":
		errs = append(errs, fieldErr(lines["prefix"], path+".prefix", "give key or prefix, not both"))
	case s.Key != "":
		if err := storage.ValidateKey(s.Key); err != nil {
			errs = append(errs, fieldErr(lines["key"], path+".key", "%s", kvflow.ErrorMessage(err)))
		}
	}
	if len(s.On) == 0 {
		out.On = []storage.ChangeKind{storage.SET, storage.DELETE, storage.EXPIRE}
	}
	for _, on := range s.On {
		switch k := storage.ChangeKind(strings.ToUpper(on)); k {
		case storage.SET, storage.DELETE, storage.EXPIRE:
			out.On = append(out.On, k)
		default:
			errs = append(errs, fieldErr(lines["on"], path+".on", "%q is not a change: expected SET, DELETE or EXPIRE", kvflow.Clip(on)))
		}
	}
	return out, errs
}

func init() {
	RegisterTriggerType(TriggerType{Type: KVTrigger, Decode: decodeKVTrigger})
}

// kvPoll is how often the KV triggers read the change feeds.
const kvPoll = 50 * time.Millisecond

// kvFeedKey is the trigger key prefix of the executions one KV trigger
// starts from one namespace's feed; the change's seq follows, zero-padded,
// so the greatest key is where the trigger stopped.
func kvFeedKey(f *Flow, tr *Trigger, ns string) string {
	return fmt.Sprintf("kv:%s/%s/%s/%s#", f.Namespace, f.ID, tr.ID, ns)
}

// kvLoop fires the KV triggers. Each matching change starts one
// execution whose trigger key names the change: a change fired twice (a
// restart, or another process reading the same feed) is refused by the
// database, so each change starts exactly one execution. Changes are fired
// in order and a failure stops the feed until the next poll, so none is
// skipped; after a restart each trigger resumes after its last fired change.
// Each poll reads the heads of the triggers' feeds in one statement and
// then only the feeds that moved, each once for the triggers at one
// position, so an idle store costs one statement a poll however many
// triggers there are.
func (t *Triggers) kvLoop(ctx context.Context) {
	defer t.loops.Done()
	pos := map[string]int64{}     // feed key → last seq read
	refused := map[string]int64{} // feed key → the flow revision warned about
	ticker := time.NewTicker(kvPoll)
	defer ticker.Stop()
	type kvTrigger struct {
		f       *Flow
		tr      *Trigger
		spec    *KVSpec
		ns, key string
	}
	for {
		var trs []kvTrigger
		var nss []string
		live, refusedNow := map[string]bool{}, map[string]bool{} // feed keys
		for _, f := range t.reload(ctx, false) {
			for _, tr := range f.Triggers {
				spec, ok := tr.Spec.(*KVSpec)
				if !ok || tr.Disabled {
					continue
				}
				ns := spec.Namespace
				if ns == "" {
					ns = f.Namespace
				}
				access := storage.Access{Policy: t.e.opts.Policy, Scope: f.Scope}
				key := kvFeedKey(f, tr, ns)
				if err := access.Check(f.Namespace, ns); err != nil {
					refusedNow[key] = true
					if r, ok := refused[key]; !ok || r != f.Revision {
						refused[key] = f.Revision
						t.log.Warn("triggers: KV trigger refused", "flow", f.Namespace+"/"+f.ID, "trigger", tr.ID, "err", err)
					}
					continue
				}
				trs = append(trs, kvTrigger{f, tr, spec, ns, key})
				if !slices.Contains(nss, ns) {
					nss = append(nss, ns)
				}
			}
		}
		var heads map[string]int64
		if len(pos) > 0 {
			var err error
			if heads, err = t.e.opts.Store.FeedHeads(ctx, nss); err != nil && ctx.Err() == nil {
				t.log.Warn("triggers: cannot read the KV change feeds", "err", err)
			}
		}
		read := t.pollReader()
		for _, k := range trs {
			live[k.key] = true
			after, ok := pos[k.key]
			if !ok {
				var err error
				if after, err = t.kvStart(ctx, k.f, k.key, k.ns); err != nil {
					t.log.Warn("triggers: cannot read the KV change feed", "namespace", k.ns, "err", err)
					continue
				}
			} else if heads == nil || heads[k.ns] <= after {
				continue // nothing new (or the heads unread: the next poll)
			}
			pos[k.key] = t.kvFire(ctx, read, k.f, k.tr, k.spec, k.ns, k.key, after)
		}
		maps.DeleteFunc(pos, func(key string, _ int64) bool { return !live[key] })
		maps.DeleteFunc(refused, func(key string, _ int64) bool { return !refusedNow[key] })
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// kvStart is where a trigger starts reading: after its last fired change,
// or, for a trigger that never fired, at the first change made since its
// flow was saved, so a process that dies before firing loses nothing. A
// flow at its first revision never starts before its save: a change fired
// under its name before that (by a deleted flow, its key written as the
// delete cleared the others) is not its own.
func (t *Triggers) kvStart(ctx context.Context, f *Flow, key, ns string) (int64, error) {
	last, err := t.repo.LastTriggerKey(ctx, key)
	if err != nil {
		return 0, err
	}
	var seq int64
	fired := last != ""
	if fired {
		_, err := fmt.Sscanf(last[len(key):], "%d", &seq)
		fired = err == nil
	}
	if fired && (f.Revision != 1 || f.Saved.IsZero()) {
		return seq, nil
	}
	var since int64
	if f.Saved.IsZero() {
		since, err = t.e.opts.Store.FeedHead(ctx, ns)
	} else {
		since, err = t.e.opts.Store.FeedSince(ctx, ns, f.Saved)
	}
	return max(seq, since), err
}

// feedReader reads up to 500 changes of ns after a seq.
type feedReader func(ctx context.Context, ns string, after int64) ([]storage.Change, error)

// pollReader is a feedReader for one poll: triggers on one namespace,
// mostly at one position, share each read.
func (t *Triggers) pollReader() feedReader {
	type at struct {
		ns    string
		after int64
	}
	type read struct {
		changes []storage.Change
		err     error
	}
	done := map[at]read{}
	return func(ctx context.Context, ns string, after int64) ([]storage.Change, error) {
		r, ok := done[at{ns, after}]
		if !ok {
			r.changes, r.err = t.e.opts.Store.Changes(ctx, ns, after, 500)
			done[at{ns, after}] = r
		}
		return r.changes, r.err
	}
}

// kvFire starts the executions of the changes after seq that match, in
// order, and returns the last seq done.
func (t *Triggers) kvFire(ctx context.Context, read feedReader, f *Flow, tr *Trigger, spec *KVSpec, ns, key string, after int64) int64 {
	for {
		changes, err := read(ctx, ns, after)
		if kvflow.ErrorCode(err) == kvflow.EEXPIRED {
			// Changes were pruned before the trigger read them.
			head, herr := t.e.opts.Store.FeedHead(ctx, ns)
			if herr == nil {
				t.log.Warn("triggers: KV changes were pruned before they fired", "flow", f.Namespace+"/"+f.ID, "trigger", tr.ID, "namespace", ns, "from", after, "to", head)
				return head
			}
			err = herr
		}
		if err != nil {
			if ctx.Err() == nil {
				t.log.Warn("triggers: cannot read the KV change feed", "namespace", ns, "err", err)
			}
			return after
		}
		for _, c := range changes {
			if spec.Matches(c) {
				vars := map[string]any{"namespace": ns, "key": c.Key, "version": c.Version, "change": string(c.Change), "type": string(c.Type), "value": nil}
				if c.Change == storage.SET {
					ver, v, err := t.e.opts.Store.GetVersion(ctx, ns, c.Key, c.Version)
					switch kvflow.ErrorCode(err) {
					case "":
						vars["value"] = kvValue(v)
						if ver.Sensitive { // trigger variables are stored: a flow reads the value with kv()
							vars["value"] = storage.Mask
						}
					case kvflow.ENOTFOUND: // purged by retention meanwhile: no value
					default:
						return after
					}
				}
				info := &kvflow.TriggerInfo{ID: tr.ID, Type: tr.Type, Variables: vars, Key: fmt.Sprintf("%s%020d", key, c.Seq)}
				if _, err := t.e.StartTriggered(ctx, f, tr.Inputs, info); err != nil && kvflow.ErrorCode(err) != kvflow.ECONFLICT {
					if ctx.Err() == nil {
						t.log.Warn("triggers: cannot start an execution", "flow", f.Namespace+"/"+f.ID, "trigger", tr.ID, "err", err)
					}
					if ctx.Err() != nil || retry(err) {
						return after
					}
				}
			}
			after = c.Seq
		}
		if len(changes) < 500 {
			return after
		}
	}
}

// kvValue is a value as trigger.value shows it: instants, dates and
// durations as ISO text.
func kvValue(v storage.Value) any {
	switch v.Type {
	case storage.DATETIME, storage.DATE, storage.DURATION:
		return v.Text()
	}
	return v.V
}
