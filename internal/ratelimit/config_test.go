package ratelimit

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	l, err := New(Config{Average: 2.5})
	if err != nil {
		t.Fatal(err)
	}
	p := l.p
	if p.name != DefaultName || p.burst != 3 || p.maxKeys != DefaultMaxKeys {
		t.Errorf("defaults: name %q burst %d max keys %d, want %q 3 %d", p.name, p.burst, p.maxKeys, DefaultName, DefaultMaxKeys)
	}
	if p.interval != int64(400*time.Millisecond) {
		t.Errorf("interval %s, want 400ms (1s/2.5)", time.Duration(p.interval))
	}
	if l, _ := New(Config{Average: 0.25}); l.p.burst != 1 {
		t.Errorf("burst of average 0.25 = %d, want 1", l.p.burst)
	}
}

// TestConfigErrorsNameTheField checks each bad value is refused with an error
// that names its field, so that the config layer can give the key path.
func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string
		msg   string
	}{
		{"zero average", Config{}, "average", "must be a positive number, got 0"},
		{"negative average", Config{Average: -1}, "average", "must be a positive number"},
		{"NaN average", Config{Average: math.NaN()}, "average", "got NaN"},
		{"infinite average", Config{Average: math.Inf(1)}, "average", "got +Inf"},
		{"negative period", Config{Average: 1, Period: -time.Second}, "period", "must be positive, got -1s"},
		{"negative burst", Config{Average: 1, Burst: -2}, "burst", "must be at least 1, got -2"},
		{"negative max keys", Config{Average: 1, MaxKeys: -1}, "max_keys", "must be between 1 and"},
		{"huge max keys", Config{Average: 1, MaxKeys: MaxMaxKeys + 1}, "max_keys", "got 10000001"},
		{"control character in name", Config{Average: 1, Name: "a\r\nX-Injected: 1"}, "name", "must be printable ASCII"},
		{"non-ASCII name", Config{Average: 1, Name: "café"}, "name", "must be printable ASCII"},
		{"faster than a microsecond", Config{Average: 2e6}, "average", "more than one request per 1µs"},
		{"slow fill", Config{Average: 1, Period: 24 * time.Hour, Burst: 4000}, "burst", "takes 4000 days to fill, more than 3650"},
		{"overflowing fill", Config{Average: 1e-300, Burst: 1}, "burst", "days to fill"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := New(c.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, want an error", c.cfg, l)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("error %q does not name field %q", err, c.field)
			}
			if !strings.HasPrefix(err.Error(), c.field+": ") || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q, want %q prefix and %q", err, c.field+": ", c.msg)
			}
			if err2 := c.cfg.Validate(); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Validate() = %v, want New's %v", err2, err)
			}
		})
	}
}

func TestConfigJoinsEveryProblem(t *testing.T) {
	err := Config{Average: -1, Period: -1, Burst: -1, MaxKeys: -1, Name: "\x00"}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if errors.As(e, &fe) {
			fields = append(fields, fe.Field)
		}
	}
	if got := strings.Join(fields, ","); got != "average,period,burst,max_keys,name" {
		t.Errorf("fields with problems %q, want every one", got)
	}
}

// TestShardLimitsSumToMaxKeys checks the shards' shares add up to MaxKeys
// exactly, for sizes with and without a remainder and below one shard's
// minimum.
func TestShardLimitsSumToMaxKeys(t *testing.T) {
	for _, max := range []int{1, 7, 63, 64, 1000, 4096, 4097, DefaultMaxKeys} {
		l, err := New(Config{Average: 1, MaxKeys: max})
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for i := range l.shards {
			if l.shards[i].limit < 1 {
				t.Errorf("max keys %d: shard %d holds %d keys", max, i, l.shards[i].limit)
			}
			sum += l.shards[i].limit
		}
		if sum != max || len(l.shards) > maxShards || len(l.shards)&(len(l.shards)-1) != 0 {
			t.Errorf("max keys %d: %d shards holding %d keys", max, len(l.shards), sum)
		}
	}
}
