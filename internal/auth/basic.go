package auth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// BasicCacheSize bounds the cache of successful basic auth checks: at most
// this many (user, password) digests, 32 bytes each plus map overhead, some
// 100 bytes an entry, so about 0.4 MB per users file at most.
const BasicCacheSize = 4096

// BasicUsers checks HTTP basic auth credentials against an htpasswd file of
// bcrypt entries ("user:$2y$10$..."; $2a$, $2b$ and $2y$ accepted, as
// `htpasswd -B` writes them). Other hash kinds (MD5 "$apr1$", "{SHA}",
// crypt, plain text) are refused when the file is read.
//
// A bcrypt comparison costs tens of milliseconds by design, so successful
// checks are cached, keyed by SHA-256(user NUL password): a hot credential
// costs a hash and a map lookup. The cache holds at most BasicCacheSize
// entries, is emptied on every reload (a changed or removed user is checked
// afresh), and failures are never cached. An unknown user is compared
// against a dummy hash, so that the time of a miss does not tell which
// users exist.
type BasicUsers struct {
	reloader
	path  string
	state atomic.Pointer[basicState]
}

type basicState struct {
	users map[string][]byte // user -> bcrypt hash
	ok    *cache[struct{}]  // digests of checked credentials
	cost  int               // the highest bcrypt cost among users

	dummyOnce sync.Once
	dummyHash []byte
}

// NewBasicUsers reads the htpasswd file. An unreadable or empty file, a line
// that is not user:bcrypt-hash, another hash kind or a user given twice is a
// *FileError naming the path and line.
func NewBasicUsers(path string, opts ...Option) (*BasicUsers, error) {
	o := buildOptions(opts)
	b := &BasicUsers{path: path}
	b.reloader = reloader{what: "basic auth users", files: []string{path}, load: b.load,
		log: o.log.WithField("component", "auth").WithField("file", path)}
	if err := b.load(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *BasicUsers) load() error {
	data, err := readFile(b.path)
	if err != nil {
		return err
	}
	users := make(map[string][]byte)
	maxCost := bcrypt.MinCost
	err = forEachLine(b.path, data, func(_ int, line []byte) error {
		user, hash, ok := bytes.Cut(line, []byte(":"))
		switch {
		case !ok:
			return errors.New("not user:hash")
		case len(user) == 0:
			return errors.New("empty user name")
		}
		if _, dup := users[string(user)]; dup {
			return fmt.Errorf("user %q given twice", user)
		}
		if err := checkBcrypt(hash); err != nil {
			return fmt.Errorf("user %q: %w", user, err)
		}
		users[string(user)] = bytes.Clone(hash)
		maxCost = max(maxCost, mustCost(hash))
		return nil
	})
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return &FileError{Path: b.path, Err: errors.New("holds no user (only blank lines and comments)")}
	}
	b.state.Store(&basicState{users: users, ok: newCache[struct{}](BasicCacheSize), cost: maxCost})
	return nil
}

// checkBcrypt refuses a hash that is not a well-formed bcrypt one, saying
// which kind it looks like; the hash itself is not shown.
func checkBcrypt(hash []byte) error {
	switch {
	case bytes.HasPrefix(hash, []byte("$apr1$")):
		return errors.New("MD5 ($apr1$) hash: only bcrypt is accepted (htpasswd -B)")
	case bytes.HasPrefix(hash, []byte("{SHA}")):
		return errors.New("SHA-1 ({SHA}) hash: only bcrypt is accepted (htpasswd -B)")
	case !(bytes.HasPrefix(hash, []byte("$2a$")) || bytes.HasPrefix(hash, []byte("$2b$")) || bytes.HasPrefix(hash, []byte("$2y$"))):
		return errors.New("not a bcrypt hash ($2a$, $2b$ or $2y$): only bcrypt is accepted (htpasswd -B)")
	}
	if _, err := bcrypt.Cost(hash); err != nil || len(hash) != 60 {
		return errors.New("malformed bcrypt hash")
	}
	return nil
}

// dummy is a bcrypt hash to compare unknown users against, at the highest
// cost of the file's hashes, so that they take as long as known ones. It is
// made on first need, once per loaded file.
func (st *basicState) dummy() []byte {
	st.dummyOnce.Do(func() {
		st.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("zkgate dummy password"), st.cost)
	})
	return st.dummyHash
}

// mustCost is the cost of a hash checkBcrypt accepted.
func mustCost(hash []byte) int {
	c, _ := bcrypt.Cost(hash)
	return c
}

// credentialDigest is SHA-256(user NUL pass), the cache key. User names
// hold no NUL (a control character, refused in the file), so the pair is
// unambiguous. Credentials up to 256 bytes are hashed without allocating.
func credentialDigest(user, pass []byte) [sha256.Size]byte {
	var buf [256]byte
	b := append(append(append(buf[:0], user...), 0), pass...)
	d := sha256.Sum256(b)
	clear(b) // do not leave the password on the stack (or heap) longer than needed
	return d
}

// Valid reports whether user and pass are one of the file's users and its
// password.
func (b *BasicUsers) Valid(user, pass []byte) bool { return b.Check(user, pass) == nil }

// Check is Valid as an error: nil, or a *Failure.
func (b *BasicUsers) Check(user, pass []byte) error {
	st := b.state.Load()
	d := credentialDigest(user, pass)
	if _, ok := st.ok.get(d[:]); ok {
		return nil
	}
	hash, known := st.users[string(user)]
	if !known {
		_ = bcrypt.CompareHashAndPassword(st.dummy(), pass)
		return errBasic
	}
	if bcrypt.CompareHashAndPassword(hash, pass) != nil {
		return errBasic
	}
	st.ok.put(d[:], struct{}{})
	return nil
}

// cached is the number of entries in the cache of successful checks.
func (b *BasicUsers) cached() int { return b.state.Load().ok.len() }
