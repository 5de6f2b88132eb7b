package healthcheck

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v", err)
	}
	want := Config{
		Active: ActiveConfig{
			Path: "/", ExpectStatus: StatusRanges{{200, 399}},
			Interval: 2 * time.Second, Timeout: time.Second,
			HealthyThreshold: 2, UnhealthyThreshold: 2, Jitter: 0.1, MaxConcurrent: 64,
			RequireFirstPass: true,
		},
		Passive: PassiveConfig{
			MaxFailures: 3, Ejection: 10 * time.Second, MaxEjection: 5 * time.Minute, MaxEjectionPercent: 50,
		},
		RemovalGuard: RemovalGuardConfig{MaxPercent: 50, Hold: 30 * time.Second},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Defaults() =\n%+v\nwant\n%+v", d, want)
	}
}

func TestZeroConfigChecksNothing(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Active.Type != "" || c.Passive.MaxFailures != 0 || c.Active.Jitter != 0 || c.PanicThreshold != 0 {
		t.Fatalf("zero config turned a check on: %+v", c)
	}
	if c.Active.Interval != 2*time.Second || c.Passive.MaxEjectionPercent != 50 {
		t.Fatalf("zero config lacks defaults: %+v", c)
	}
	none := Config{Active: ActiveConfig{Type: "none"}}.withDefaults()
	if none.Active.Type != "" {
		t.Fatalf(`type "none" became %q, want ""`, none.Active.Type)
	}
}

func TestMaxEjectionNeverBelowEjection(t *testing.T) {
	c := Config{Passive: PassiveConfig{Ejection: 10 * time.Minute}}.withDefaults()
	if c.Passive.MaxEjection != 10*time.Minute {
		t.Fatalf("max_ejection = %s, want 10m", c.Passive.MaxEjection)
	}
}

func TestValidateNamesFieldPaths(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error, in any order
	}{
		{"type", Config{Active: ActiveConfig{Type: "icmp"}}, []string{`active.type: unknown probe type "icmp"`}},
		{"path", Config{Active: ActiveConfig{Type: "http", Path: "healthz"}}, []string{"active.path:"}},
		{"host", Config{Active: ActiveConfig{Host: "a b"}}, []string{"active.host:"}},
		{"status", Config{Active: ActiveConfig{ExpectStatus: StatusRanges{{200, 204}, {300, 200}}}}, []string{"active.expect_status: 300-200"}},
		{"status bounds", Config{Active: ActiveConfig{ExpectStatus: StatusRanges{{99, 700}}}}, []string{"active.expect_status:"}},
		{"durations", Config{Active: ActiveConfig{Interval: -1, Timeout: -time.Second}}, []string{"active.interval:", "active.timeout:"}},
		{"thresholds", Config{Active: ActiveConfig{HealthyThreshold: -1, UnhealthyThreshold: -2}}, []string{"active.healthy_threshold:", "active.unhealthy_threshold:"}},
		{"jitter", Config{Active: ActiveConfig{Jitter: 1}}, []string{"active.jitter:"}},
		{"jitter NaN", Config{Active: ActiveConfig{Jitter: math.NaN()}}, []string{"active.jitter:"}},
		{"concurrency", Config{Active: ActiveConfig{MaxConcurrent: -1}}, []string{"active.max_concurrent:"}},
		{"passive", Config{Passive: PassiveConfig{MaxFailures: -1, Ejection: -1, MaxEjection: -1, MaxEjectionPercent: 101}},
			[]string{"passive.max_failures:", "passive.ejection:", "passive.max_ejection:", "passive.max_ejection_percent:"}},
		{"panic", Config{PanicThreshold: 150}, []string{"panic_threshold:"}},
		{"panic negative", Config{PanicThreshold: -1}, []string{"panic_threshold:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if got, want := strings.Count(err.Error(), "\n")+1, len(tt.want); got != want {
				t.Errorf("Validate() reported %d problems, want %d: %q", got, want, err)
			}
		})
	}
}

func TestValidateAcceptsGoodConfigs(t *testing.T) {
	for _, c := range []Config{
		{},
		Defaults(),
		{Active: ActiveConfig{Type: "http", Path: "/healthz?full=1", Host: "echo.internal", ExpectStatus: StatusRanges{{204, 204}, {301, 302}}}},
		{PanicThreshold: 100, Passive: PassiveConfig{MaxEjectionPercent: 100}},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New(nil, Config{}, nil); err == nil || !strings.Contains(err.Error(), "upstream") {
		t.Fatalf("New(nil upstream) = %v, want an error naming upstream", err)
	}
	_, err := New(staticOf(), Config{Active: ActiveConfig{Interval: -1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "active.interval") {
		t.Fatalf("New(bad config) = %v, want an error naming active.interval", err)
	}
}

func TestStatusRangeText(t *testing.T) {
	for in, want := range map[string]StatusRange{
		"200-399":     {200, 399},
		" 204 ":       {204, 204},
		"200 - 299":   {200, 299},
		"500-599":     {500, 599},
		"100-100":     {100, 100},
		"299-200":     {299, 200}, // syntax only; Validate rejects it
		"2xx":         {},
		"":            {},
		"200-":        {},
		"abc-def":     {},
		"200-300-400": {},
	} {
		r, err := ParseStatusRange(in)
		if want == (StatusRange{}) {
			if err == nil {
				t.Errorf("ParseStatusRange(%q) = %v, want an error", in, r)
			}
			continue
		}
		if err != nil || r != want {
			t.Errorf("ParseStatusRange(%q) = %v, %v; want %v", in, r, err, want)
		}
	}
	if s := (StatusRange{200, 399}).String(); s != "200-399" {
		t.Errorf("String = %q", s)
	}
	if s := (StatusRange{204, 204}).String(); s != "204" {
		t.Errorf("String = %q", s)
	}
}

func TestStatusRangesText(t *testing.T) {
	for in, want := range map[string]string{
		"200-399":         "200-399",
		"200-299, 304":    "200-299,304",
		" 204 ,301-302 ":  "204,301-302",
		"200,":            "",
		"":                "",
		"2xx,304":         "",
		"200-299;304":     "",
		"200-299,304,418": "200-299,304,418",
	} {
		rs, err := ParseStatusRanges(in)
		if want == "" {
			if err == nil {
				t.Errorf("ParseStatusRanges(%q) = %v, want an error", in, rs)
			}
			continue
		}
		if err != nil || rs.String() != want {
			t.Errorf("ParseStatusRanges(%q) = %v, %v; want %s", in, rs, err, want)
		}
	}
	rs := StatusRanges{{200, 299}, {304, 304}}
	for code, want := range map[int]bool{199: false, 200: true, 299: true, 300: false, 304: true, 305: false} {
		if rs.Contains(code) != want {
			t.Errorf("%s contains %d: %v, want %v", rs, code, !want, want)
		}
	}
}

func TestValidateProblemsAreFieldErrors(t *testing.T) {
	err := Config{Active: ActiveConfig{Interval: -1}, PanicThreshold: 101}.Validate()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %v, want joined problems", err)
	}
	var paths []string
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %q is not a *FieldError", e)
		}
		paths = append(paths, fe.Path)
	}
	if want := []string{"active.interval", "panic_threshold"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
}
