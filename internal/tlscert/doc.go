// Package tlscert is the certificate store of a TLS entry point: it loads
// certificate/key pairs and a client CA bundle from PEM files, chooses the
// certificate of each handshake by SNI, and reloads the files when they
// change without a restart.
//
// # Checking
//
// Check reads one pair as the gateway's validation does: both files exist,
// the PEM parses, the key is one TLS can use and matches the first (leaf)
// certificate. Each error is a *FileError whose text begins with the setting
// and the path ("key_file /etc/x.key: does not match cert_file /etc/x.crt"),
// so that the configuration layer prefixes its key path. CheckCA does the
// same for a CA bundle.
//
// # SNI rule
//
// A certificate is chosen for the names of its leaf: the DNS subject
// alternative names, or the subject common name only when there are none.
// For the server name a client sends (compared case-insensitively, a
// trailing dot ignored), the first pair that names it exactly wins; else the
// first pair with a wildcard one level up ("*.example.com" covers
// "a.example.com", not "a.b.example.com" and not "example.com"); else the
// first pair, which also answers clients that send no SNI. The lookup is two
// map reads on an immutable snapshot behind an atomic.Pointer: no lock, and
// no allocation unless the name has upper-case letters.
//
// # Reload semantics
//
// Reload (called by Watch on a file change and by the gateway on SIGHUP)
// reads every pair and the CA bundle into a new snapshot. Only if all of them
// are good does it replace the current one, in one atomic store: new
// handshakes get the new set, connections already open keep the certificate
// they were given. If any file is bad nothing changes: the old set keeps
// serving, and the error, naming the setting and the file, is logged and
// counted (ReloadFailures). The client CA pool is part of the snapshot and is
// checked by the config's VerifyConnection at every handshake, resumed ones
// included, so a CA removed from the bundle stops admitting its clients at
// their next handshake.
//
// Certificates that expire within Options.ExpiryWarning (14 days by default)
// or have expired are warned about in the log when loaded, and flagged by
// Certificates for the admin API and metrics.
package tlscert
