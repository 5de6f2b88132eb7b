package auth

import (
	"errors"
	"fmt"
)

// ErrUnauthorized is what every failed check is (errors.Is). Its text is
// the only one a client may see.
var ErrUnauthorized = errors.New("unauthorized")

// Failure is the error of a failed check: its text is ErrUnauthorized's,
// whatever the cause; Reason says the cause for a debug log. A Reason never
// holds the credential or any part of it.
type Failure struct{ Reason string }

func (f *Failure) Error() string { return ErrUnauthorized.Error() }

// Is makes errors.Is(f, ErrUnauthorized) true.
func (f *Failure) Is(target error) bool { return target == ErrUnauthorized }

// Reason returns the debug reason of a failed check's error, or "" when err
// is not a *Failure.
func Reason(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return ""
}

// The failures of Verify are preallocated: a flood of bad tokens costs no
// allocation for its errors.
var (
	errMalformed     = &Failure{"malformed token"}
	errTooLong       = &Failure{"token longer than the limit"}
	errHeader        = &Failure{"malformed token header"}
	errPayload       = &Failure{"malformed token payload"}
	errCrit          = &Failure{"token header has crit extensions, none understood"}
	errUnknownKID    = &Failure{"no key with the token's kid"}
	errNoKey         = &Failure{"no kid in the token and not exactly one key for its algorithm"}
	errAlg           = &Failure{"token header alg differs from the key's algorithm"}
	errSignature     = &Failure{"bad signature"}
	errNoExp         = &Failure{"token has no numeric exp"}
	errExpired       = &Failure{"token expired"}
	errNotYetValid   = &Failure{"token not valid yet (nbf)"}
	errIssuer        = &Failure{"token issuer not the configured one"}
	errAudience      = &Failure{"token audience not among the configured ones"}
	errClaimType     = &Failure{"registered claim of the wrong JSON type"}
	errUnknownAPIKey = &Failure{"unknown API key"}
	errBasic         = &Failure{"unknown user or wrong password"}

	errEmptyKeys = errors.New("holds no key (only blank lines and comments)")
)

// FileError is the error of a credentials file: the path, the line when one
// line is at fault (1-based; 0 for the whole file), and what is wrong. It
// never holds a secret from the file.
type FileError struct {
	Path string
	Line int
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }
