package proxy

import (
	"net/http"
	"testing"
	"time"
)

func TestNewTransportDefaults(t *testing.T) {
	tr := NewTransport(TransportConfig{ResponseHeaderTimeout: 3 * time.Second}).Std()
	if tr.Proxy != nil {
		t.Error("the transport would use proxies from the environment")
	}
	if !tr.DisableCompression {
		t.Error("the transport would add Accept-Encoding and decompress")
	}
	if tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost || tr.IdleConnTimeout != DefaultIdleConnTimeout ||
		tr.ExpectContinueTimeout != DefaultExpectContinueTimeout || tr.ResponseHeaderTimeout != 3*time.Second {
		t.Errorf("transport settings %d %v %v %v", tr.MaxIdleConnsPerHost, tr.IdleConnTimeout, tr.ExpectContinueTimeout, tr.ResponseHeaderTimeout)
	}
}

func TestProxyPassesEncodedBodiesThrough(t *testing.T) {
	be := newBackend(t, "gz", func(w http.ResponseWriter, r *http.Request) {
		if ae := r.Header.Get("Accept-Encoding"); ae != "" {
			t.Errorf("backend received Accept-Encoding %q the client did not send", ae)
		}
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write([]byte("not really gzip"))
	})
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	req, _ := http.NewRequest("GET", fe.URL+"/", nil)
	// A client that asks for no encoding, so that it does not decode either.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding %q: the body was decoded on the way", res.Header.Get("Content-Encoding"))
	}
}

func TestBufferPoolDoesNotAllocate(t *testing.T) {
	p := &bufferPool{}
	p.Put(p.Get())
	allocs := testing.AllocsPerRun(1000, func() {
		b := p.Get()
		if len(b) != copyBufferSize {
			t.Fatalf("buffer of %d bytes", len(b))
		}
		p.Put(b)
	})
	// sync.Pool may drop entries at a GC; allow the rare refill.
	if allocs > 0.1 {
		t.Errorf("Get/Put allocates %v times per call", allocs)
	}
}

func TestStatusWriterIgnoresInformational(t *testing.T) {
	sw := &statusWriter{w: &discardWriter{h: http.Header{}}}
	sw.WriteHeader(http.StatusEarlyHints)
	sw.WriteHeader(http.StatusCreated)
	_, _ = sw.Write([]byte("abc"))
	if sw.status != http.StatusCreated || sw.size != 3 {
		t.Errorf("status %d size %d, want 201 and 3", sw.status, sw.size)
	}
}
