package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/zkgate/zkgate/balancer"
)

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	buf := make([]byte, n)
	got, err := io.ReadFull(r, buf)
	if err != nil {
		t.Fatalf("read %d: got %d, %v", n, got, err)
	}
	return string(buf)
}

func TestRequestBodyReplaysKeptBytes(t *testing.T) {
	var b requestBody
	b.init(strings.NewReader("0123456789"), 100)
	v1 := b.view()
	if got := readN(t, v1, 4); got != "0123" {
		t.Fatalf("first view read %q", got)
	}
	if !b.replayable() {
		t.Fatal("4 bytes within a 100-byte buffer: not replayable")
	}
	v2 := b.view()
	if _, err := v1.Read(make([]byte, 1)); !errors.Is(err, errBodyRetired) {
		t.Errorf("retired view read: %v, want errBodyRetired", err)
	}
	got, err := io.ReadAll(v2)
	if err != nil || string(got) != "0123456789" {
		t.Errorf("second view read %q, %v; want the whole body", got, err)
	}
}

func TestRequestBodyNotReplayableBeyondBuffer(t *testing.T) {
	var b requestBody
	b.init(strings.NewReader("0123456789"), 4)
	v1 := b.view()
	readN(t, v1, 5)
	if b.replayable() {
		t.Fatal("5 bytes read with a 4-byte buffer: replayable")
	}
	if _, err := b.getBody(); !errors.Is(err, errBodyNotReplayable) {
		t.Errorf("getBody: %v, want errBodyNotReplayable", err)
	}
	v2 := b.view()
	if _, err := v2.Read(make([]byte, 8)); !errors.Is(err, errBodyNotReplayable) {
		t.Errorf("a view after overflow read: %v, want errBodyNotReplayable", err)
	}
}

func TestRequestBodyUnreadIsReplayableWithoutBuffer(t *testing.T) {
	var b requestBody
	b.init(strings.NewReader("abc"), 0)
	_ = b.view() // an attempt that failed before reading
	if !b.replayable() {
		t.Fatal("an unread body is not replayable")
	}
	got, err := io.ReadAll(b.view())
	if err != nil || string(got) != "abc" {
		t.Errorf("read %q, %v", got, err)
	}
	if b.replayable() {
		t.Error("a read body without buffer is replayable")
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestRequestBodyRecordsClientError(t *testing.T) {
	var b requestBody
	broken := errors.New("client reset")
	b.init(errReader{broken}, 100)
	if _, err := b.view().Read(make([]byte, 4)); !errors.Is(err, broken) {
		t.Fatalf("read: %v", err)
	}
	if !errors.Is(b.readErr(), broken) || b.replayable() {
		t.Errorf("readErr %v, replayable %v", b.readErr(), b.replayable())
	}
}

// countingTracker counts Done calls.
type countingTracker struct{ n int }

func (c *countingTracker) Done(balancer.Endpoint) { c.n++ }

type rwc struct {
	io.Reader
	written strings.Builder
}

func (r *rwc) Write(p []byte) (int, error) { return r.written.Write(p) }
func (r *rwc) Close() error                { return nil }

func TestTrackBodyDoneOnceAndWritable(t *testing.T) {
	tr := &countingTracker{}
	body := trackBody(io.NopCloser(strings.NewReader("x")), tr, balancer.Endpoint{Addr: "a"})
	body.Close()
	body.Close()
	if tr.n != 1 {
		t.Errorf("Done called %d times, want 1", tr.n)
	}
	conn := &rwc{Reader: strings.NewReader("")}
	up := trackBody(conn, tr, balancer.Endpoint{Addr: "a"})
	w, ok := up.(io.ReadWriteCloser)
	if !ok {
		t.Fatal("a 101 body lost its Write")
	}
	_, _ = w.Write([]byte("ping"))
	if conn.written.String() != "ping" {
		t.Errorf("wrote %q", conn.written.String())
	}
}
