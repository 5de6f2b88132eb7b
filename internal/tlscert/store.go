package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/internal/filewatch"
)

// DefaultExpiryWarning is how long before its NotAfter a certificate is
// reported as expiring soon when Options.ExpiryWarning is zero.
const DefaultExpiryWarning = 14 * 24 * time.Hour

// DefaultWatchDebounce is how long the watched files must stay quiet before
// Watch reloads when Options.WatchDebounce is zero.
const DefaultWatchDebounce = filewatch.DefaultDebounce

// Options configures a Store.
type Options struct {
	// Pairs are the certificates served, at least one. The first is the
	// default: it answers a handshake without SNI or with a name no pair
	// covers. When two pairs cover a name, the earlier one serves it.
	Pairs []Pair
	// MinVersion is the lowest TLS version accepted (tls.VersionTLS10 to
	// tls.VersionTLS13); zero means tls.VersionTLS12.
	MinVersion uint16
	// ClientCAFile is a PEM bundle of the CAs that client certificates must
	// chain to. Empty: no client certificate is asked for.
	ClientCAFile string
	// ClientAuthRequired, with ClientCAFile, refuses a client without a
	// certificate; without it a client certificate is verified if given.
	// It is an error without ClientCAFile.
	ClientAuthRequired bool
	// NextProtos are the ALPN protocols offered, in preference order, e.g.
	// {"h2", "http/1.1"}. Nil offers none.
	NextProtos []string
	// Logger receives reloads, refused reloads and expiry warnings. Nil
	// discards them.
	Logger logrus.FieldLogger
	// ExpiryWarning is how long before NotAfter a certificate is flagged
	// ExpiresSoon and warned about; zero means DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// WatchDebounce is how long Watch waits for the files to stay quiet
	// before reloading; zero means DefaultWatchDebounce.
	WatchDebounce time.Duration
	// Now is the clock of expiry reports and of client certificate
	// verification; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Store holds the current certificates of one TLS entry point and the pool
// of CAs its client certificates are verified against. It is safe for
// concurrent use.
type Store struct {
	pairs         []Pair
	caFile        string
	required      bool
	minVersion    uint16
	nextProtos    []string
	log           logrus.FieldLogger
	expiryWarning time.Duration
	debounce      time.Duration
	now           func() time.Time

	snap     atomic.Pointer[snapshot]
	reloadMu sync.Mutex // one load at a time, so that the last one read wins
	reloads  atomic.Uint64
	failures atomic.Uint64
	lastErr  atomic.Pointer[error] // the last reload's, nil after a good one
	watches  sync.WaitGroup
}

// snapshot is one loaded set of certificates: immutable once published.
type snapshot struct {
	// exact maps a lower-case DNS name to the first certificate covering it;
	// wild maps the parent of a wildcard ("example.com" for
	// "*.example.com") likewise.
	exact, wild map[string]*tls.Certificate
	def         *tls.Certificate // the first pair's
	clientCAs   *x509.CertPool   // nil when no client certificates are asked
	infos       []CertInfo       // ExpiresSoon and Expired left unset
}

// CertInfo describes one loaded certificate.
type CertInfo struct {
	CertFile, KeyFile string
	// Names are the names the certificate is chosen for: its DNS subject
	// alternative names, or its subject common name when it has none, lower
	// case and without a trailing dot.
	Names           []string
	Subject, Issuer string
	// Serial is the serial number in hexadecimal.
	Serial              string
	NotBefore, NotAfter time.Time
	// ExpiresSoon: NotAfter is less than ExpiryWarning away (or past).
	ExpiresSoon bool
	// Expired: NotAfter is past (a certificate is valid through NotAfter).
	Expired bool
}

// New loads every pair, and the client CA file if one is named, failing on
// the first bad one. Its error names the setting and the file, with the
// setting named as in the gateway's configuration:
// "certificates[1].key_file /etc/b.key: does not match cert_file /etc/b.crt",
// "client_auth.ca_file /etc/ca.pem: no such file". Certificates expiring
// within ExpiryWarning are warned about.
func New(opts Options) (*Store, error) {
	s := &Store{
		pairs:         slices.Clone(opts.Pairs),
		caFile:        opts.ClientCAFile,
		required:      opts.ClientAuthRequired,
		minVersion:    opts.MinVersion,
		nextProtos:    slices.Clone(opts.NextProtos),
		log:           opts.Logger,
		expiryWarning: opts.ExpiryWarning,
		debounce:      opts.WatchDebounce,
		now:           opts.Now,
	}
	switch {
	case len(s.pairs) == 0:
		return nil, errors.New("certificates: none given; a TLS entry point needs at least one cert_file and key_file")
	case s.required && s.caFile == "":
		return nil, errors.New("client_auth.required: needs client_auth.ca_file, the CAs client certificates must chain to")
	case s.minVersion == 0:
		s.minVersion = tls.VersionTLS12
	case s.minVersion < tls.VersionTLS10 || s.minVersion > tls.VersionTLS13:
		return nil, fmt.Errorf("min_version: %#04x is not a TLS version (want 1.0 to 1.3)", s.minVersion)
	}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	s.log = s.log.WithField("component", "tlscert")
	if s.expiryWarning <= 0 {
		s.expiryWarning = DefaultExpiryWarning
	}
	if s.debounce <= 0 {
		s.debounce = DefaultWatchDebounce
	}
	if s.now == nil {
		s.now = time.Now
	}
	snap, err := s.load()
	if err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	s.warnExpiry(snap)
	return s, nil
}

// load reads every file into a new snapshot.
func (s *Store) load() (*snapshot, error) {
	snap := &snapshot{
		exact: make(map[string]*tls.Certificate),
		wild:  make(map[string]*tls.Certificate),
		infos: make([]CertInfo, 0, len(s.pairs)),
	}
	for i, p := range s.pairs {
		cert, err := Check(p)
		if err != nil {
			return nil, prefixKey(err, "certificates["+strconv.Itoa(i)+"].")
		}
		if snap.def == nil {
			snap.def = cert
		}
		leaf := cert.Leaf
		names := certNames(leaf)
		for _, n := range names {
			m, key := snap.exact, n
			if parent, ok := strings.CutPrefix(n, "*."); ok {
				m, key = snap.wild, parent
			}
			if _, taken := m[key]; !taken {
				m[key] = cert
			}
		}
		snap.infos = append(snap.infos, CertInfo{
			CertFile:  p.CertFile,
			KeyFile:   p.KeyFile,
			Names:     names,
			Subject:   leaf.Subject.String(),
			Issuer:    leaf.Issuer.String(),
			Serial:    leaf.SerialNumber.Text(16),
			NotBefore: leaf.NotBefore,
			NotAfter:  leaf.NotAfter,
		})
	}
	if s.caFile != "" {
		pool, err := CheckCA(s.caFile)
		if err != nil {
			return nil, prefixKey(err, "client_auth.")
		}
		snap.clientCAs = pool
	}
	return snap, nil
}

// prefixKey puts prefix before the key of a *FileError.
func prefixKey(err error, prefix string) error {
	var fe *FileError
	if errors.As(err, &fe) {
		return &FileError{Key: prefix + fe.Key, Path: fe.Path, Err: fe.Err}
	}
	return fmt.Errorf("%s%w", prefix, err)
}

// certNames returns the names a certificate is chosen by: its DNS SANs, or
// its common name when it has none.
func certNames(leaf *x509.Certificate) []string {
	src := leaf.DNSNames
	if len(src) == 0 && leaf.Subject.CommonName != "" {
		src = []string{leaf.Subject.CommonName}
	}
	names := make([]string, 0, len(src))
	for _, n := range src {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// pick returns the certificate for a server name: the exact name, then a
// wildcard one level up, then the default. It allocates only when the name
// has upper-case letters.
func (snap *snapshot) pick(name string) *tls.Certificate {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return snap.def
	}
	if hasUpper(name) {
		name = strings.ToLower(name)
	}
	if c, ok := snap.exact[name]; ok {
		return c
	}
	// "*.example.com" covers "a.example.com": one label, not empty, not more.
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c, ok := snap.wild[name[i+1:]]; ok {
			return c
		}
	}
	return snap.def
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// TLSConfig returns a new *tls.Config serving the store's current
// certificates: each handshake picks from the set loaded last, by SNI (see
// the package doc). The caller may clone it and set other fields.
//
// With a client CA file the config asks for a client certificate
// (ClientAuth RequireAnyClientCert when required, RequestClientCert
// otherwise) and its VerifyConnection verifies the certificate given against
// the pool loaded last, for full and resumed handshakes alike, so a reloaded
// CA file takes effect at the next handshake. crypto/tls itself does not
// verify it, so ConnectionState.VerifiedChains stays empty: a connection
// that completed its handshake has a verified client certificate when
// PeerCertificates is not empty. Do not replace VerifyConnection.
func (s *Store) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:     s.minVersion,
		NextProtos:     slices.Clone(s.nextProtos),
		GetCertificate: s.getCertificate,
	}
	if s.caFile != "" {
		cfg.ClientAuth = tls.RequestClientCert
		if s.required {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		cfg.VerifyConnection = s.verifyClient
	}
	return cfg
}

// getCertificate is the tls.Config.GetCertificate of TLSConfig.
func (s *Store) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.snap.Load().pick(hello.ServerName), nil
}

// clientAuthUsage is what a client certificate must be good for.
var clientAuthUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

// verifyClient is the tls.Config.VerifyConnection of TLSConfig when client
// certificates are asked for. A missing certificate when one is required is
// refused by crypto/tls (RequireAnyClientCert), also on resumption.
func (s *Store) verifyClient(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	opts := x509.VerifyOptions{
		Roots:       s.snap.Load().clientCAs,
		CurrentTime: s.now(),
		KeyUsages:   clientAuthUsage,
	}
	if len(cs.PeerCertificates) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("tlscert: client certificate: %w", err)
	}
	return nil
}

// Reload reads every pair and the client CA file again. When all of them
// are good they replace the current set at once for new handshakes (open
// connections keep theirs); when any is bad nothing changes, the error
// (naming the setting and the file) is logged, counted in ReloadFailures
// and returned. Watch and the gateway's SIGHUP call it.
func (s *Store) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	snap, err := s.load()
	if err != nil {
		s.failures.Add(1)
		s.lastErr.Store(&err)
		e := s.log.WithError(err)
		var fe *FileError
		if errors.As(err, &fe) {
			e = e.WithFields(logrus.Fields{"key": fe.Key, "file": fe.Path})
		}
		e.Error("TLS certificates not reloaded: keeping the previous ones")
		return err
	}
	s.snap.Store(snap)
	s.lastErr.Store(nil)
	s.reloads.Add(1)
	s.log.WithField("certificates", len(snap.infos)).Info("TLS certificates reloaded")
	s.warnExpiry(snap)
	return nil
}

// LastReloadError is the error of the last reload when it was refused: nil
// once a reload succeeds (the files were fixed).
func (s *Store) LastReloadError() error {
	if e := s.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Reloads counts the reloads that replaced the set.
func (s *Store) Reloads() uint64 { return s.reloads.Load() }

// ReloadFailures counts the reloads refused because a file was bad.
func (s *Store) ReloadFailures() uint64 { return s.failures.Load() }

// Certificates describes the current certificates in the order of
// Options.Pairs, with ExpiresSoon and Expired as of now.
func (s *Store) Certificates() []CertInfo {
	snap := s.snap.Load()
	now := s.now()
	out := make([]CertInfo, len(snap.infos))
	for i, info := range snap.infos {
		info.Names = slices.Clone(info.Names)
		info.Expired = now.After(info.NotAfter)
		info.ExpiresSoon = info.NotAfter.Sub(now) < s.expiryWarning
		out[i] = info
	}
	return out
}

// warnExpiry logs a warning for each certificate of snap that has expired
// or expires within the warning period.
func (s *Store) warnExpiry(snap *snapshot) {
	now := s.now()
	for _, info := range snap.infos {
		left := info.NotAfter.Sub(now)
		if left >= s.expiryWarning {
			continue
		}
		e := s.log.WithFields(logrus.Fields{
			"cert_file": info.CertFile,
			"names":     info.Names,
			"not_after": info.NotAfter.UTC().Format(time.RFC3339),
		})
		if left < 0 {
			e.Warn("TLS certificate has expired")
			continue
		}
		e.WithField("expires_in", left.Round(time.Minute).String()).Warn("TLS certificate expires soon")
	}
}
