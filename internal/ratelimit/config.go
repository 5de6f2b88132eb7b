package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults and bounds of a Config.
const (
	// DefaultName is the policy identifier of a Config without a Name.
	DefaultName = "default"
	// DefaultPeriod is the Period of a Config that leaves it zero.
	DefaultPeriod = time.Second
	// DefaultMaxKeys is the MaxKeys of a Config that leaves it zero: about
	// 6 MB of keys at the bound (see the package doc for the measure).
	DefaultMaxKeys = 100_000
	// MaxMaxKeys is the largest MaxKeys accepted (about 0.6 GB at the bound).
	MaxMaxKeys = 10_000_000
	// MinInterval is the shortest time one token may take to refill: a key
	// is limited to at most one million requests per second. The interval
	// is kept in whole nanoseconds, rounded down, so this bound also keeps
	// the rounding's excess below 0.1% of the rate.
	MinInterval = time.Microsecond
	// MaxFill is the longest time an empty bucket may take to fill
	// (Burst × Period / Average): ten years of 365 days.
	MaxFill = 10 * 365 * 24 * time.Hour
)

// Config is the policy of a Limiter: a token bucket of Burst tokens per key,
// refilled at Average tokens per Period. Each request takes one token. The
// zero values of Name, Period, Burst and MaxKeys select their defaults.
type Config struct {
	// Name identifies the policy in the RateLimit-Policy and RateLimit
	// fields (a structured-field String: printable ASCII). Default
	// "default"; the wiring layer may pass the route's name.
	Name string
	// Average is the number of tokens added per Period: the sustained
	// rate. Required, positive and finite; may be fractional (0.5 per
	// second is one request every two seconds).
	Average float64
	// Period is the time over which Average tokens are added. Default 1s.
	Period time.Duration
	// Burst is the size of the bucket: how many requests a key that has
	// been idle may make at once. Default ceil(Average), at least 1.
	Burst int
	// MaxKeys bounds the number of keys tracked at once, and with it the
	// memory: about 60 bytes per key of up to 15 bytes (an IPv4 address),
	// so about 6 MB at the default 100,000, and at most about 110 bytes
	// per key whatever the keys (see MaxKeyLen). Default 100,000. See the
	// package doc for what happens at the bound.
	MaxKeys int
}

// FieldError is a problem with one field of a Config. Field is named as in
// the configuration file ("average", "period", "burst", "max_keys", "name"),
// so that the caller can prefix its key path.
type FieldError struct {
	Field string
	Err   error
}

// Error returns "field: problem".
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate reports every problem with c, each a *FieldError, joined with
// errors.Join; nil if New would accept c.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// params are the values a Limiter runs on, derived from a valid Config.
type params struct {
	name     string
	burst    int
	maxKeys  int
	interval int64 // ns per token, Period/Average rounded down
	tau      int64 // ns an empty bucket takes to fill: burst × interval
}

// resolve applies the defaults to c and checks it.
func (c Config) resolve() (params, error) {
	var errs []error
	if c.Average <= 0 || math.IsNaN(c.Average) || math.IsInf(c.Average, 0) {
		errs = append(errs, fieldErr("average", "must be a positive number, got %v", c.Average))
	}
	if c.Period < 0 {
		errs = append(errs, fieldErr("period", "must be positive, got %s (0 means %s)", c.Period, DefaultPeriod))
	}
	if c.Burst < 0 {
		errs = append(errs, fieldErr("burst", "must be at least 1, got %d (0 means ceil(average))", c.Burst))
	}
	if c.MaxKeys < 0 || c.MaxKeys > MaxMaxKeys {
		errs = append(errs, fieldErr("max_keys", "must be between 1 and %d, got %d (0 means %d)", MaxMaxKeys, c.MaxKeys, DefaultMaxKeys))
	}
	for i := 0; i < len(c.Name); i++ {
		if ch := c.Name[i]; ch < 0x20 || ch > 0x7e {
			errs = append(errs, fieldErr("name", "%q must be printable ASCII", c.Name))
			break
		}
	}
	if len(errs) > 0 {
		return params{}, errors.Join(errs...)
	}

	p := params{name: c.Name, burst: c.Burst, maxKeys: c.MaxKeys}
	if p.name == "" {
		p.name = DefaultName
	}
	period := c.Period
	if period == 0 {
		period = DefaultPeriod
	}
	if p.burst == 0 {
		p.burst = int(min(math.Ceil(c.Average), math.MaxInt32))
	}
	if p.maxKeys == 0 {
		p.maxKeys = DefaultMaxKeys
	}
	interval := float64(period) / c.Average
	if interval < float64(MinInterval) {
		return params{}, fieldErr("average", "%v per %s is more than one request per %s, the fastest a key can be limited to", c.Average, period, MinInterval)
	}
	if fill := interval * float64(p.burst); fill > float64(MaxFill) {
		const day = float64(24 * time.Hour)
		return params{}, fieldErr("burst", "a bucket of %d refilled at %v per %s takes %.4g days to fill, more than %.0f", p.burst, c.Average, period, fill/day, float64(MaxFill)/day)
	}
	p.interval = int64(interval)
	p.tau = p.interval * int64(p.burst)
	return p, nil
}
