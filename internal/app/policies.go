package app

import (
	"errors"
	"fmt"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/proxy"
)

// routePolicies builds route i's policies from rc, or nil when it has none.
// Its errors name the route's keys.
func routePolicies(i int, rc config.Route) (*proxy.Policies, error) {
	key := fmt.Sprintf("routes[%d]", i)
	var errs []error
	if rc.Auth != nil {
		errs = append(errs, fmt.Errorf("%s.auth: not supported by this build yet", key))
	}
	if rc.RateLimit != nil {
		errs = append(errs, fmt.Errorf("%s.rate_limit: not supported by this build yet", key))
	}
	if rc.Compress != nil && rc.Compress.Enabled {
		errs = append(errs, fmt.Errorf("%s.compress: not supported by this build yet", key))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &proxy.Policies{
		IPAllow:               config.Prefixes(rc.IPAllow),
		IPDeny:                config.Prefixes(rc.IPDeny),
		SetResponseHeaders:    rc.ResponseHeaders.Set,
		RemoveResponseHeaders: rc.ResponseHeaders.Remove,
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
	if len(p.IPAllow) == 0 && len(p.IPDeny) == 0 && p.CORS == nil && len(p.SetResponseHeaders) == 0 && len(p.RemoveResponseHeaders) == 0 {
		return nil, nil // a route without policies pays nothing for them
	}
	return p, nil
}
