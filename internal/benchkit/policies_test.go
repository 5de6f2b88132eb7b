package benchkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/app"
	"github.com/zkgate/zkgate/internal/auth"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/zktest"
)

// The bench token verifies against its JWKS with zkgate's own JWT check,
// and a token whose signature is altered does not.
func TestWriteBenchToken(t *testing.T) {
	tok, err := WriteBenchToken(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := auth.NewJWT(auth.JWTConfig{JWKSFile: tok.JWKSFile, CacheSize: -1})
	if err != nil {
		t.Fatalf("the bench JWKS does not load: %v", err)
	}
	claims, err := jwt.Verify([]byte(tok.Token), time.Now())
	if err != nil {
		t.Fatalf("the bench token does not verify: %v", err)
	}
	if sub, ok := claims.String("sub"); !ok || sub != PolicySubject {
		t.Errorf("sub = %q, %v; want %q", sub, ok, PolicySubject)
	}
	if _, err := jwt.Verify([]byte(tok.Token), time.Now().Add(23*time.Hour)); err != nil {
		t.Errorf("the token expires within 23 hours (%v), want a day", err)
	}
	if _, err := jwt.Verify([]byte(tok.Token), time.Now().Add(25*time.Hour)); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("the token 25 hours on: %v, want it expired", err)
	}
	bad := []byte(tok.Token)
	bad[len(bad)-5] ^= 0x01 // the signature's last bytes
	if bad[len(bad)-5] == '.' || bytes.Equal(bad, []byte(tok.Token)) {
		t.Fatal("test bug: the signature was not altered")
	}
	if _, err := jwt.Verify(bad, time.Now()); err == nil {
		t.Error("a token with an altered signature verifies")
	}
	other, err := WriteBenchToken(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Verify([]byte(other.Token), time.Now()); err == nil {
		t.Error("a token signed with another bench key verifies: the key is not fresh per run")
	}
	want := []string{"Authorization: Bearer " + tok.Token, "Origin: " + PolicyOrigin}
	if got := tok.Headers(); !slices.Equal(got, want) {
		t.Errorf("Headers = %q, want %q", got, want)
	}
}

// The policies target's configuration loads and builds as `zkgate validate`
// (serve's build path) builds it, with the policies on the RoutePrefix
// route only and everything else as the plain zkgate target's.
func TestZkgatePoliciesConfigLoads(t *testing.T) {
	dir := t.TempDir()
	tok, err := WriteBenchToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	text := ZkgatePoliciesConfig(19104, 19105, 19100, "/services/bench1", tok.JWKSFile)
	cfg, err := config.Parse([]byte(text), "zkgate policies bench config")
	if err != nil {
		t.Fatalf("the generated configuration does not load: %v\n%s", err, text)
	}
	plain, err := config.Parse([]byte(ZkgateConfig(19104, 19105, 19100, "/services/bench1", true, true)), "plain")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 2 {
		t.Fatalf("routes = %+v, want /echo and the rest", cfg.Routes)
	}
	echo, rest := cfg.Routes[0], cfg.Routes[1]
	if echo.Auth == nil || echo.Auth.JWT == nil || echo.Auth.JWT.JWKSFile != tok.JWKSFile ||
		http.CanonicalHeaderKey(echo.Auth.JWT.ForwardClaims["sub"]) != "X-User-Id" || len(echo.Auth.JWT.ForwardClaims) != 1 {
		t.Errorf("echo auth jwt = %+v, want jwt with %s forwarding sub as X-User-ID", echo.Auth.JWT, tok.JWKSFile)
	}
	if rl := echo.RateLimit; rl == nil || rl.Average != 1e6 || rl.Burst != 1e6 || rl.Key != "client_ip" {
		t.Errorf("echo rate_limit = %+v, want average and burst 1000000 by client_ip", rl)
	}
	if c := echo.CORS; c == nil || !slices.Equal(c.AllowedOrigins, []string{PolicyOrigin}) {
		t.Errorf("echo cors = %+v, want allowed_origins [%s]", c, PolicyOrigin)
	}
	if rest.Auth != nil || rest.RateLimit != nil || rest.CORS != nil {
		t.Errorf("the route on \"\" has policies: %+v", rest)
	}
	echo.Auth, echo.RateLimit, echo.CORS = nil, nil, nil
	if !reflect.DeepEqual(echo, plain.Routes[0]) || !reflect.DeepEqual(rest, plain.Routes[1]) || !reflect.DeepEqual(cfg.EntryPoints, plain.EntryPoints) ||
		!reflect.DeepEqual(cfg.Services, plain.Services) || cfg.Log != plain.Log {
		t.Errorf("without its policies the configuration differs from the plain zkgate target's:\n%+v\n%+v", cfg, plain)
	}

	file := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := app.Main([]string{"validate", "--config", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("zkgate validate: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	// The build reads the JWKS: a missing one is refused, naming the key.
	if err := os.Remove(tok.JWKSFile); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := app.Main([]string{"validate", "--config", file}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "jwks_file") {
		t.Errorf("zkgate validate without the JWKS: exit %d, %q; want a failure naming jwks_file", code, stderr.String())
	}
}

// Through a real zkgate (in process, the backend registered in a real
// ZooKeeper) with the policies configuration: the token and Origin the
// harness sends get both bodies and the CORS header, a request without the
// token is answered 401, and the route on "" stays open.
func TestZkgatePoliciesConfigRoutes(t *testing.T) {
	tok, err := WriteBenchToken(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port := zktest.FreePort(t)
	ctx, gatewayDone := serveZkgate(t, func(admin, zkPort int) string {
		return ZkgatePoliciesConfig(port, admin, zkPort, "/services/bench1", tok.JWKSFile)
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string, headers ...string) (int, string, http.Header, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return 0, "", nil, err
		}
		for _, hv := range headers {
			name, value, _ := strings.Cut(hv, ":")
			req.Header.Add(name, strings.TrimSpace(value))
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, "", nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header, err
	}
	err = WaitFor(ctx, 30*time.Second, "zkgate with policies", func() (bool, error) {
		if err := exited(gatewayDone); err != nil {
			return false, err
		}
		status, body, _, err := get(RoutePrefix+"/", tok.Headers()...)
		return err == nil && status == 200 && body == SmallBody, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{RoutePrefix + "/": SmallBody, RoutePrefix + LargePath: string(LargeBody())} {
		status, body, h, err := get(path, tok.Headers()...)
		if err != nil || status != 200 || body != want {
			t.Errorf("GET %s with the token: %d, %d bytes, %v; want 200 and %d bytes", path, status, len(body), err, len(want))
		}
		if got := h.Get("Access-Control-Allow-Origin"); got != PolicyOrigin {
			t.Errorf("GET %s: Access-Control-Allow-Origin %q, want %q", path, got, PolicyOrigin)
		}
		if status, _, _, err := get(path, "Origin: "+PolicyOrigin); err != nil || status != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, %v; want 401", path, status, err)
		}
		bad := tok.Token[:len(tok.Token)-4] + "AAAA"
		if status, _, _, err := get(path, "Authorization: Bearer "+bad, "Origin: "+PolicyOrigin); err != nil || status != http.StatusUnauthorized {
			t.Errorf("GET %s with an altered token: %d, %v; want 401", path, status, err)
		}
	}
	if status, body, _, err := get("/other"); err != nil || status != 200 || body != SmallBody {
		t.Errorf("GET /other without the token: %d, %q, %v; want the route on \"\" open", status, body, err)
	}
}
