package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/healthcheck"
)

// TestCheckerConfigDefaultsAgree holds the file's health_check and
// removal_guard defaults and the checker's to one set: a service that says
// nothing about them runs healthcheck.Defaults().
func TestCheckerConfigDefaultsAgree(t *testing.T) {
	got, err := defaultService().CheckerConfig()
	if err != nil {
		t.Fatalf("CheckerConfig() of the defaults: %v", err)
	}
	if want := healthcheck.Defaults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("the file's defaults map to\n%+v\nthe checker's defaults are\n%+v", got, want)
	}
	cfg := mustParse(t, "services: {echo: {}}\n")
	if got, _ := cfg.Services["echo"].CheckerConfig(); !reflect.DeepEqual(got, healthcheck.Defaults()) {
		t.Fatalf("an empty service's health check maps to\n%+v\nwant healthcheck.Defaults()", got)
	}
}

func TestCheckerConfigMapsEveryKey(t *testing.T) {
	cfg := mustParse(t, `
services:
  echo:
    health_check:
      active: {type: http, path: /healthz, host: echo.internal, expect_status: "200-299, 304",
               interval: 3s, timeout: 2s, healthy_threshold: 4, unhealthy_threshold: 5,
               require_first_pass: false}
      passive: {max_failures: 6, ejection: 20s, max_ejection_percent: 30, server_errors: true}
      panic_threshold: 40
    removal_guard: {max_percent: 35, hold: 45s}
`)
	got, err := cfg.Services["echo"].CheckerConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := healthcheck.Defaults()
	want.Active = healthcheck.ActiveConfig{
		Type: healthcheck.ProbeHTTP, Path: "/healthz", Host: "echo.internal",
		ExpectStatus: healthcheck.StatusRanges{{Min: 200, Max: 299}, {Min: 304, Max: 304}},
		Interval:     3 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 4, UnhealthyThreshold: 5,
		Jitter: want.Active.Jitter, MaxConcurrent: want.Active.MaxConcurrent,
	}
	want.Passive = healthcheck.PassiveConfig{
		MaxFailures: 6, Ejection: 20 * time.Second, MaxEjection: want.Passive.MaxEjection,
		MaxEjectionPercent: 30, ServerErrors: true,
	}
	want.PanicThreshold = 40 // percent on both sides
	want.RemovalGuard = healthcheck.RemovalGuardConfig{MaxPercent: 35, Hold: 45 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CheckerConfig() =\n%+v\nwant\n%+v", got, want)
	}
}

// TestCheckerConfigRefusesBadInput: what the checker cannot run is an error
// of the mapping, naming the key, not a silent fallback to a default.
func TestCheckerConfigRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		edit func(*HealthCheck)
		path string
	}{
		{"empty expect_status", func(h *HealthCheck) { h.Active.ExpectStatus = "" }, "active.expect_status"},
		{"expect_status not a range", func(h *HealthCheck) { h.Active.ExpectStatus = "2xx" }, "active.expect_status"},
		{"expect_status one bad part", func(h *HealthCheck) { h.Active.ExpectStatus = "200-299,30x" }, "active.expect_status"},
		{"expect_status open range", func(h *HealthCheck) { h.Active.ExpectStatus = "200-" }, "active.expect_status"},
		{"expect_status reversed", func(h *HealthCheck) { h.Active.ExpectStatus = "300-200" }, "active.expect_status"},
		{"expect_status below 100", func(h *HealthCheck) { h.Active.ExpectStatus = "99" }, "active.expect_status"},
		{"expect_status above 599", func(h *HealthCheck) { h.Active.ExpectStatus = "600" }, "active.expect_status"},
		{"probe path not a request path", func(h *HealthCheck) { h.Active.Path = "/%zz" }, "active.path"},
		{"unknown probe type", func(h *HealthCheck) { h.Active.Type = "grpc" }, "active.type"},
		{"panic threshold above 100", func(h *HealthCheck) { h.PanicThreshold = 150 }, "panic_threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := defaultService().HealthCheck
			tt.edit(&h)
			_, err := h.CheckerConfig()
			var fe *healthcheck.FieldError
			if !errors.As(err, &fe) || fe.Path != tt.path {
				t.Fatalf("CheckerConfig() error = %v, want a *healthcheck.FieldError at %s", err, tt.path)
			}
		})
	}
}

func TestCheckerConfigNoEjectionAllowedTurnsPassiveOff(t *testing.T) {
	h := defaultService().HealthCheck
	h.Passive.MaxEjectionPercent = 0
	got, err := h.CheckerConfig()
	if err != nil || got.Passive.MaxFailures != 0 {
		t.Fatalf("max_ejection_percent 0: max failures %d, err %v; want 0 (passive checks off), nil", got.Passive.MaxFailures, err)
	}
}

// TestValidateReportsWhatTheCheckerRefuses: a probe path that the file's
// own check lets through but the checker refuses is a problem of the file,
// reported once, at its key.
func TestValidateReportsWhatTheCheckerRefuses(t *testing.T) {
	_, err := Parse([]byte("services:\n  echo: {health_check: {active: {type: http, path: '/health%zz'}}}\n"), "test.yaml")
	wantOneProblem(t, err, "services.echo.health_check.active.path:", `"/health%zz" is not an absolute request path`)

	_, err = Parse([]byte("services:\n  echo: {health_check: {panic_threshold: 101}}\n"), "test.yaml")
	wantOneProblem(t, err, "services.echo.health_check.panic_threshold: must be a percentage")
	if probs := problemList(err); strings.Contains(probs[0], "0..100") {
		t.Errorf("the checker's wording was reported instead of the file's: %q", probs[0])
	}
}
