package storage

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage/seal"
)

// Sensitive entries: the value object is sealed with AES-256-GCM (package
// seal) by the Store, whatever the backends, and the value is masked as Mask
// wherever it could leak. Reads of a sensitive value under a context that
// carries Secrets (WithSecrets) add the value to them, so an execution can
// mask its logs, outputs and errors.

// Mask is what a sensitive value is shown as.
const Mask = "******"

// KeyHelp says how to configure the encryption key, for error messages.
const KeyHelp = "set KVFLOW_SECRET_KEY (base64 of 32 random bytes: openssl rand -base64 32) or the secretKeyFile setting"

// seal encrypts a sensitive value's ION bytes, bound to its namespace and key.
func (s *Store) seal(ns, key string, plain []byte) ([]byte, error) {
	out, err := s.keys.Seal(plain, sealAD(ns, key))
	if errors.Is(err, seal.ErrNoKey) {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot store sensitive key '%s' in namespace '%s': no encryption key is configured; %s.", key, ns, KeyHelp)
	} else if err != nil {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot store sensitive key '%s' in namespace '%s': %v.", key, ns, err)
	}
	return out, nil
}

// open decrypts a sensitive entry's object.
func (s *Store) open(e *Entry, sealed []byte) ([]byte, error) {
	plain, err := s.keys.Open(sealed, sealAD(e.Namespace, e.Key))
	switch {
	case errors.Is(err, seal.ErrNoKey):
		return nil, &kvflow.Error{Code: kvflow.EINTERNAL, Err: err, Message: "Cannot read sensitive key '" + e.Key + "' in namespace '" + e.Namespace +
			"': " + err.Error() + "; " + KeyHelp + "."}
	case err != nil:
		return nil, &kvflow.Error{Code: kvflow.EINTERNAL, Err: err, Message: "Cannot read sensitive key '" + e.Key + "' in namespace '" + e.Namespace +
			"': " + err.Error() + " (a rotated key goes in secretOldKeys)."}
	}
	return plain, nil
}

func sealAD(ns, key string) []byte { return []byte(ns + "\x00" + key) }

// SealBytes encrypts plain with the store's key, authenticating ad too: for
// secrets kept outside a KV entry (a durable execution's real outputs).
// seal.ErrNoKey when no key is configured.
func (s *Store) SealBytes(plain []byte, ad string) ([]byte, error) {
	return s.keys.Seal(plain, []byte(ad))
}

// OpenBytes decrypts what SealBytes made with the same ad.
func (s *Store) OpenBytes(sealed []byte, ad string) ([]byte, error) {
	return s.keys.Open(sealed, []byte(ad))
}

// Secrets is a set of sensitive texts to mask: the values read, and what
// templates rendered from them. It is safe for concurrent use.
type Secrets struct {
	mu     sync.RWMutex
	set    map[string]struct{}
	sorted []string // longest first; nil when stale
	repl   *strings.Replacer
}

type secretsKey struct{}

// WithSecrets returns a context whose reads of sensitive values add them to sec.
func WithSecrets(ctx context.Context, sec *Secrets) context.Context {
	return context.WithValue(ctx, secretsKey{}, sec)
}

// SecretsFrom returns the Secrets WithSecrets put in ctx, or nil.
func SecretsFrom(ctx context.Context) *Secrets {
	sec, _ := ctx.Value(secretsKey{}).(*Secrets)
	return sec
}

// revealed records a sensitive entry's value in ctx's Secrets.
func revealed(ctx context.Context, e *Entry, v Value) {
	if e.Sensitive {
		if sec := SecretsFrom(ctx); sec != nil {
			sec.AddValue(v)
		}
	}
}

// Add records text to mask; empty text is ignored.
func (s *Secrets) Add(text string) {
	if s == nil || text == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[text]; ok {
		return
	}
	if s.set == nil {
		s.set = map[string]struct{}{}
	}
	s.set[text] = struct{}{}
	s.repl = nil
}

// AddValue records a value's text and, for JSON, its string and number leaves.
func (s *Secrets) AddValue(v Value) {
	if s == nil {
		return
	}
	s.Add(v.Text())
	if v.Type == JSON {
		s.addLeaves(v.V)
	}
}

func (s *Secrets) addLeaves(x any) {
	switch t := x.(type) {
	case map[string]any:
		for _, e := range t {
			s.addLeaves(e)
		}
	case []any:
		for _, e := range t {
			s.addLeaves(e)
		}
	case bool, nil: // one bit: masking every true would hide nothing
	default:
		if v, err := FromGo(t); err == nil {
			s.Add(v.Text())
		}
	}
}

// Holds reports whether text is a recorded text or contains one of at
// least min bytes (a short one, such as a digit, would be found anywhere).
func (s *Secrets) Holds(text string, min int) bool {
	if s == nil || text == "" {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.set[text]; ok {
		return true
	}
	for t := range s.set {
		if len(t) >= min && strings.Contains(text, t) {
			return true
		}
	}
	return false
}

// Texts returns the recorded texts, in no order.
func (s *Secrets) Texts() []string {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.set))
	for t := range s.set {
		out = append(out, t)
	}
	return out
}

// Empty reports whether nothing is to be masked.
func (s *Secrets) Empty() bool {
	if s == nil {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.set) == 0
}

// MaskText replaces every recorded text in text with Mask, longest first.
func (s *Secrets) MaskText(text string) string {
	if s.Empty() || text == "" {
		return text
	}
	return s.replacer().Replace(text)
}

func (s *Secrets) replacer() *strings.Replacer {
	s.mu.RLock()
	r := s.repl
	s.mu.RUnlock()
	if r != nil {
		return r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.repl == nil {
		texts := make([]string, 0, len(s.set))
		for t := range s.set {
			texts = append(texts, t)
		}
		// strings.Replacer tries its pairs in order at each position: longest
		// first, so a secret containing another is masked whole.
		sort.Slice(texts, func(i, j int) bool {
			if len(texts[i]) != len(texts[j]) {
				return len(texts[i]) > len(texts[j])
			}
			return texts[i] < texts[j]
		})
		pairs := make([]string, 0, 2*len(texts))
		for _, t := range texts {
			pairs = append(pairs, t, Mask)
		}
		s.repl = strings.NewReplacer(pairs...)
	}
	return s.repl
}

// MaskAny returns x with every string masked (MaskText) and every other
// scalar whose text is recorded replaced by Mask, through maps (their keys
// too: outputs.<task> of a ForEach is keyed by its values) and lists.
// x itself is not changed.
func (s *Secrets) MaskAny(x any) any {
	if s.Empty() {
		return x
	}
	switch t := x.(type) {
	case string:
		return s.MaskText(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[s.MaskText(k)] = s.MaskAny(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = s.MaskAny(e)
		}
		return out
	case nil, bool:
		return x
	}
	if v, err := FromGo(x); err == nil {
		if masked := s.MaskText(v.Text()); masked != v.Text() {
			return masked
		}
	}
	return x
}
