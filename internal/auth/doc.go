// Package auth checks the credentials a route asks for: API keys, HTTP basic
// auth users (bcrypt) and JWTs verified against a JWKS file. Each check is
// safe for concurrent use, reads its file at construction, reloads it on
// Reload or, with Watch, when the file changes (internal/filewatch: renames,
// symlink swaps and Kubernetes volume updates seen, 250 ms debounce). A file
// that does not load leaves the previous credentials in force.
//
// A failed check says nothing an attacker could use: every failure error is
// ErrUnauthorized (errors.Is), and its Reason, for debug logs only, never
// holds the credential. Construction errors name the file and line, never
// the secret on it.
//
// Costs on the hot path, each held by a test:
//   - APIKeys.Valid: one SHA-256 of the presented key and one map lookup on
//     the digest; no allocation.
//   - BasicUsers.Valid: a SHA-256 of user NUL password looked up in a
//     bounded cache of successful checks (BasicCacheSize entries); only a
//     miss costs a bcrypt comparison.
//   - JWT.Verify: a verified token is cached by its bytes (JWTConfig.
//     CacheSize entries, each until the token expires); a hit is a map
//     lookup and two time comparisons, no allocation.
//
// JWTs are verified with the standard library alone. The algorithm is the
// key's: a JWKS entry fixes it (its "alg", or the only one its "kty" and
// "crv" allow), and a token whose header names another one is refused, so
// "alg":"none" and the RS256-public-key-as-HMAC-secret confusion cannot
// arise: no code path verifies with an algorithm the key did not fix.
package auth
