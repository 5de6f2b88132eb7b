package benchkit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func TestBackendBodies(t *testing.T) {
	srv := httptest.NewServer(&Backend{ID: "backend-7"})
	defer srv.Close()
	for _, tc := range []struct {
		path, want, ctype string
	}{
		{"/", SmallBody, "text/plain; charset=utf-8"},
		{"/healthz", SmallBody, "text/plain; charset=utf-8"},
		{LargePath, string(LargeBody()), "application/octet-stream"},
		{JSONPath, string(JSONBody()), "application/json"},
		{IDPath, "backend-7", "text/plain; charset=utf-8"},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || string(body) != tc.want || resp.ContentLength != int64(len(tc.want)) ||
			resp.Header.Get("Content-Type") != tc.ctype || len(resp.TransferEncoding) != 0 {
			t.Errorf("GET %s: %d, %d bytes, Content-Length %d, type %q, transfer encoding %v; want 200 with %d bytes of type %q and a Content-Length",
				tc.path, resp.StatusCode, len(body), resp.ContentLength, resp.Header.Get("Content-Type"), resp.TransferEncoding, len(tc.want), tc.ctype)
		}
	}
	if len(SmallBody) != 13 || len(LargeBody()) != 16384 {
		t.Errorf("bodies are %d and %d bytes, want 13 and 16384", len(SmallBody), len(LargeBody()))
	}
}

// The JSON body is exactly 64 KiB of valid JSON shaped like an API's list
// answer, the same in every process, and compresses as such an answer
// does: several times, not a hundred times as a repeated string would.
func TestJSONBody(t *testing.T) {
	body := JSONBody()
	if len(body) != JSONSize || JSONSize != 65536 {
		t.Fatalf("JSON body is %d bytes, want %d (64 KiB)", len(body), JSONSize)
	}
	var v struct {
		Data []map[string]any `json:"data"`
		Page struct {
			Size       int    `json:"size"`
			NextCursor string `json:"next_cursor"`
		} `json:"page"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("JSON body does not parse: %v", err)
	}
	if len(v.Data) < 100 || v.Page.Size != len(v.Data) || len(v.Page.NextCursor) < 16 {
		t.Errorf("%d users, page size %d, cursor of %d characters; want over 100 users, the size matching, a cursor", len(v.Data), v.Page.Size, len(v.Page.NextCursor))
	}
	if u := v.Data[len(v.Data)-1]; u["email"] == "" || u["uuid"] == v.Data[0]["uuid"] {
		t.Errorf("last user %v: want its own uuid and an email", u)
	}
	if !bytes.Equal(makeJSONBody(), body) {
		t.Error("a second build of the JSON body differs")
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, 5)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = zw.Write(body)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if ratio := float64(len(body)) / float64(buf.Len()); ratio < 3 || ratio > 12 {
		t.Errorf("gzip level 5 makes %d bytes of %d (%.1f×); want 3× to 12×, as an API's JSON", buf.Len(), len(body), ratio)
	}
}

func TestRunBackendWithoutZooKeeper(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunBackend(ctx, BackendOptions{Listen: "127.0.0.1:0", Ready: func(a string) { ready <- a }}, quietLog())
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("RunBackend returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("backend not ready within 10s")
	}
	resp, err := http.Get("http://" + addr + IDPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != addr {
		t.Errorf("ID = %q, want the listen address %q by default", body, addr)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunBackend after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunBackend did not return within 10s of cancel")
	}
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Error("backend still serving after RunBackend returned")
	}
}

func TestRunBackendRejects(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		o    BackendOptions
		want string
	}{
		{BackendOptions{}, "listen address is required"},
		{BackendOptions{Listen: "127.0.0.1:0", Paths: []string{"/services/x"}}, "without ZooKeeper"},
		{BackendOptions{Listen: "256.0.0.1:0"}, "listen 256.0.0.1:0"},
	} {
		err := RunBackend(ctx, tc.o, quietLog())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RunBackend(%+v) = %v, want an error containing %q", tc.o, err, tc.want)
		}
	}
}
