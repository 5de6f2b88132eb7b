package auth

import (
	"crypto/sha256"
	"sync/atomic"
)

// APIKeys checks API keys against a keys file: one key per line, blank
// lines and "#" comments ignored, surrounding spaces trimmed.
//
// Keys are held as the set of their SHA-256 digests and a presented key is
// looked up by its digest. The time a check takes depends on the digest,
// never on how much of the key matched a real one: to steer the lookup an
// attacker would need digests of chosen prefixes of a secret key, which
// SHA-256's preimage resistance denies. So the check is constant time with
// respect to the key's content, like a subtle.ConstantTimeCompare against
// each key, but O(1) in the number of keys where that is O(n), and
// without allocation.
type APIKeys struct {
	reloader
	path string
	keys atomic.Pointer[map[[sha256.Size]byte]struct{}]
}

// NewAPIKeys reads the keys file. An unreadable or empty file, or a line
// with a control character, is a *FileError naming the path (and line).
func NewAPIKeys(path string, opts ...Option) (*APIKeys, error) {
	o := buildOptions(opts)
	a := &APIKeys{path: path}
	a.reloader = reloader{what: "API keys", files: []string{path}, load: a.load,
		log: o.log.WithField("component", "auth").WithField("file", path)}
	if err := a.load(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *APIKeys) load() error {
	data, err := readFile(a.path)
	if err != nil {
		return err
	}
	keys := make(map[[sha256.Size]byte]struct{})
	err = forEachLine(a.path, data, func(_ int, line []byte) error {
		keys[sha256.Sum256(line)] = struct{}{}
		return nil
	})
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return &FileError{Path: a.path, Err: errEmptyKeys}
	}
	a.keys.Store(&keys)
	return nil
}

// Valid reports whether key is one of the file's. It does not allocate and
// its time does not depend on the key's content (see APIKeys).
func (a *APIKeys) Valid(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	_, ok := (*a.keys.Load())[sha256.Sum256(key)]
	return ok
}

// Check is Valid as an error: nil, or a *Failure.
func (a *APIKeys) Check(key []byte) error {
	if a.Valid(key) {
		return nil
	}
	return errUnknownAPIKey
}

// Len is the number of distinct keys loaded.
func (a *APIKeys) Len() int { return len(*a.keys.Load()) }
