// Package seal encrypts the value objects of sensitive entries with
// AES-256-GCM (Go's crypto/aes and crypto/cipher). A sealed object is
//
//	"kvs1" | key id (8 bytes) | nonce (12 bytes) | ciphertext and tag
//
// where the key id is the first 8 bytes of the SHA-256 of the key, so a
// Keyring holding the current key and older ones opens what any of them
// sealed and always seals with the current one (key rotation). The caller's
// associated data (the entry's namespace and key) is authenticated too, so
// an object copied under another key does not open.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// Magic starts every sealed object.
const Magic = "kvs1"

const (
	idSize    = 8
	nonceSize = 12
	header    = len(Magic) + idSize + nonceSize
	// Overhead is how many bytes sealing adds.
	Overhead = header + 16
)

// ErrNoKey is returned (wrapped) when no key is configured.
var ErrNoKey = errors.New("no encryption key is configured")

// ErrWrongKey is returned (wrapped) when an object was sealed with a key the
// keyring does not hold, or does not authenticate.
var ErrWrongKey = errors.New("the object does not open with the configured keys")

// ParseKey reads a key written as base64 (standard or URL alphabet, padded
// or not) of exactly 32 bytes, surrounding white space ignored.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("the key is %d bytes; expected base64 of %d bytes (openssl rand -base64 32)", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("the key is not base64; expected base64 of %d bytes (openssl rand -base64 32)", KeySize)
}

// NewKey returns a fresh random key as base64 text.
func NewKey() string {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("seal: no randomness: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(k)
}

// KeyID is the id of a key as it appears in sealed objects and messages.
func KeyID(key []byte) string {
	id := keyID(key)
	return hex.EncodeToString(id[:])
}

func keyID(key []byte) [idSize]byte {
	sum := sha256.Sum256(key)
	var id [idSize]byte
	copy(id[:], sum[:idSize])
	return id
}

// Keyring seals with its current key and opens with any of its keys. The
// zero Keyring, or one made by FileKeyring before its file exists, holds
// none. It is safe for concurrent use.
type Keyring struct {
	mu      sync.Mutex
	current [idSize]byte
	aeads   map[[idSize]byte]cipher.AEAD

	file   string // FileKeyring: where the key is, created on the first Seal
	loaded bool
}

// New returns a keyring sealing with current and opening with current and old.
func New(current []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: map[[idSize]byte]cipher.AEAD{}, loaded: true}
	if err := k.add(current, true); err != nil {
		return nil, err
	}
	for _, o := range old {
		if err := k.add(o, false); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// FileKeyring returns a keyring whose current key is in file (base64, as
// ParseKey reads), plus old ones: the file is read on first use, and created
// with a fresh key, mode 0600, by the first Seal when it does not exist yet.
func FileKeyring(file string, old ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: map[[idSize]byte]cipher.AEAD{}, file: file}
	for _, o := range old {
		if err := k.add(o, false); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *Keyring) add(key []byte, current bool) error {
	if len(key) != KeySize {
		return fmt.Errorf("the key is %d bytes; expected %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	id := keyID(key)
	k.aeads[id] = aead
	if current {
		k.current = id
	}
	return nil
}

// load reads (or, when create is set, creates) the key file once.
func (k *Keyring) load(create bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.loaded {
		return nil
	}
	if k.file == "" {
		return ErrNoKey
	}
	data, err := os.ReadFile(k.file)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err = os.MkdirAll(filepath.Dir(k.file), 0o700); err == nil {
			data = []byte(NewKey() + "\n")
			err = writeNew(k.file, data)
			if errors.Is(err, fs.ErrExist) { // another process made it first
				data, err = os.ReadFile(k.file)
			}
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoKey
	} else if err != nil {
		return fmt.Errorf("cannot read the key file %s: %w", k.file, err)
	}
	key, err := ParseKey(string(data))
	if err != nil {
		return fmt.Errorf("key file %s: %w", k.file, err)
	}
	if err := k.add(key, true); err != nil {
		return err
	}
	k.loaded = true
	return nil
}

// writeNew creates file with data, mode 0600, failing if it exists; the
// data is synced before the name appears, so no reader sees a partial key.
func writeNew(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), file) // fails with ErrExist if another process won
}

// Seal encrypts plain, authenticating ad too.
func (k *Keyring) Seal(plain, ad []byte) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKey
	}
	if err := k.load(true); err != nil {
		return nil, err
	}
	k.mu.Lock()
	id, aead := k.current, k.aeads[k.current]
	k.mu.Unlock()
	out := make([]byte, header, header+len(plain)+aead.Overhead())
	copy(out, Magic)
	copy(out[len(Magic):], id[:])
	nonce := out[len(Magic)+idSize : header]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plain, ad), nil
}

// Open decrypts what Seal made with any key of the keyring.
func (k *Keyring) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead || !bytes.HasPrefix(sealed, []byte(Magic)) {
		return nil, fmt.Errorf("%w: it is not a sealed object", ErrWrongKey)
	}
	var id [idSize]byte
	copy(id[:], sealed[len(Magic):])
	if k == nil {
		return nil, fmt.Errorf("%w (the object needs key %s)", ErrNoKey, hex.EncodeToString(id[:]))
	}
	if err := k.load(false); err != nil && !errors.Is(err, ErrNoKey) {
		return nil, err
	}
	k.mu.Lock()
	aead := k.aeads[id]
	k.mu.Unlock()
	if aead == nil {
		if len(k.aeads) == 0 {
			return nil, fmt.Errorf("%w (the object needs key %s)", ErrNoKey, hex.EncodeToString(id[:]))
		}
		return nil, fmt.Errorf("%w: it was sealed with key %s, which is not configured", ErrWrongKey, hex.EncodeToString(id[:]))
	}
	plain, err := aead.Open(nil, sealed[len(Magic)+idSize:header], sealed[header:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s does not authenticate it", ErrWrongKey, hex.EncodeToString(id[:]))
	}
	return plain, nil
}
