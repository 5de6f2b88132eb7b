package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/internal/auth"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/ratelimit"
	"github.com/zkgate/zkgate/proxy"
)

// fileWatcher is a policy's file (keys, users, JWKS): watched while its
// route serves.
type fileWatcher interface {
	Watch(ctx context.Context) error
	Wait()
}

// routePolicies builds route i's policies from rc, or nil when it has none,
// loading the files they name (so that validate refuses a bad one by key).
// The returned watchers are started by Gateway.apply. Errors name the
// route's keys.
func routePolicies(i int, rc config.Route, log logrus.FieldLogger, prev *routeLimiter) (*proxy.Policies, []fileWatcher, *routeLimiter, error) {
	key := fmt.Sprintf("routes[%d]", i)
	var errs []error
	var files []fileWatcher
	var rl *routeLimiter
	p := &proxy.Policies{
		IPAllow:               config.Prefixes(rc.IPAllow),
		IPDeny:                config.Prefixes(rc.IPDeny),
		SetResponseHeaders:    rc.ResponseHeaders.Set,
		RemoveResponseHeaders: rc.ResponseHeaders.Remove,
	}
	if c := rc.Compress; c != nil && c.Enabled {
		p.Compress = &proxy.CompressPolicy{MinBytes: c.MinBytes, Level: c.Level}
	}
	if c := rc.CORS; c != nil {
		p.CORS = &proxy.CORSPolicy{
			AllowedOrigins:   c.AllowedOrigins,
			AllowedMethods:   c.AllowedMethods,
			AllowedHeaders:   c.AllowedHeaders,
			ExposedHeaders:   c.ExposedHeaders,
			AllowCredentials: c.AllowCredentials,
			MaxAge:           c.MaxAge,
		}
	}
	if a := rc.Auth; a != nil {
		pa, w, err := routeAuth(key+".auth", a, log)
		if err != nil {
			errs = append(errs, err)
		} else {
			p.Auth, files = pa, append(files, w)
		}
	}
	if l := rc.RateLimit; l != nil {
		if prev != nil && prev.cfg == *l {
			rl = prev // the same limit: its buckets go on
		} else if lim, err := ratelimit.New(ratelimit.Config{Name: rc.Name, Average: l.Average, Period: l.Period, Burst: l.Burst}); err != nil {
			errs = append(errs, fmt.Errorf("%s.rate_limit.%w", key, err))
		} else {
			rl = &routeLimiter{cfg: *l, lim: lim}
		}
		if rl != nil {
			p.RateLimit = &proxy.RateLimitPolicy{Limiter: rateLimiter{rl.lim}, Key: l.Key}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, nil, err
	}
	if len(p.IPAllow) == 0 && len(p.IPDeny) == 0 && p.CORS == nil && p.Auth == nil && p.RateLimit == nil && p.Compress == nil &&
		len(p.SetResponseHeaders) == 0 && len(p.RemoveResponseHeaders) == 0 {
		return nil, nil, nil, nil // a route without policies pays nothing for them
	}
	return p, files, rl, nil
}

// routeLimiter is a route's rate limiter with the configuration it was
// made for.
type routeLimiter struct {
	cfg config.RateLimit
	lim *ratelimit.Limiter
}

// routeAuth loads a route's credential file and returns the proxy's policy
// with the checker, and the checker to watch.
func routeAuth(key string, a *config.Auth, log logrus.FieldLogger) (*proxy.AuthPolicy, fileWatcher, error) {
	opt := auth.WithLogger(log)
	pa := &proxy.AuthPolicy{ForwardCredentials: a.ForwardCredentials}
	switch {
	case a.APIKey != nil:
		keys, err := auth.NewAPIKeys(a.APIKey.KeysFile, opt)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.api_key.keys_file: %w", key, err)
		}
		pa.APIKey = &proxy.APIKeyAuth{Header: a.APIKey.Header, Keys: keys}
		return pa, keys, nil
	case a.JWT != nil:
		j, err := auth.NewJWT(auth.JWTConfig{JWKSFile: a.JWT.JWKSFile, Issuer: a.JWT.Issuer, Audiences: a.JWT.Audiences, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("%s.jwt.jwks_file: %w", key, err)
		}
		pa.JWT = &proxy.JWTAuth{Verifier: jwtVerifier{j}, ForwardClaims: a.JWT.ForwardClaims}
		return pa, j, nil
	case a.Basic != nil:
		users, err := auth.NewBasicUsers(a.Basic.UsersFile, opt)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.basic.users_file: %w", key, err)
		}
		pa.Basic = &proxy.BasicAuth{Realm: a.Basic.Realm, Users: users}
		return pa, users, nil
	}
	return nil, nil, fmt.Errorf("%s: none of api_key, jwt and basic", key)
}

// jwtVerifier is an *auth.JWT as the proxy's TokenVerifier.
type jwtVerifier struct{ j *auth.JWT }

func (v jwtVerifier) Verify(token []byte, now time.Time) (proxy.Claims, error) {
	c, err := v.j.Verify(token, now)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// rateLimiter is a *ratelimit.Limiter as the proxy's RateLimiter.
type rateLimiter struct{ l *ratelimit.Limiter }

func (r rateLimiter) Allow(key string, now time.Time) proxy.RateDecision {
	d := r.l.Allow(key, now)
	return proxy.RateDecision{Allowed: d.Allowed, Remaining: d.Remaining, RetryAfter: d.RetryAfter, Reset: d.Reset}
}

func (r rateLimiter) AppendPolicy(b []byte) []byte { return r.l.AppendPolicy(b) }

func (r rateLimiter) AppendRateLimit(b []byte, d proxy.RateDecision) []byte {
	return r.l.AppendRateLimit(b, ratelimit.Decision{Allowed: d.Allowed, Remaining: d.Remaining, RetryAfter: d.RetryAfter, Reset: d.Reset})
}

// watchFiles starts the watches of r's policy files; stopFiles ends them.
func (r *route) watchFiles(log logrus.FieldLogger) {
	if len(r.files) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	for _, f := range r.files {
		if err := f.Watch(ctx); err != nil {
			log.WithError(err).WithField("route", r.cfg.Name).Warn("policy file not watched; it is re-read on each reload (SIGHUP, POST /api/reload)")
		}
	}
}

func (r *route) stopFiles() {
	if r.stop == nil {
		return
	}
	r.stop()
	for _, f := range r.files {
		f.Wait()
	}
}
