package tlscert

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckGoodPairs(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	ec := ca.issue(t, leafSpec{dns: []string{"ec.test"}})
	rs := ca.issue(t, leafSpec{rsa: true, dns: []string{"rsa.test"}})
	combined := filepath.Join(dir, "combined.pem")
	writeFile(t, combined, append(append([]byte{}, ec.certPEM...), ec.keyPEM...))
	chain := ca.issue(t, leafSpec{dns: []string{"chain.test"}})
	chainPair := writePair(t, dir, "chain", chain)
	writeFile(t, chainPair.CertFile, append(append([]byte{}, chain.certPEM...), ca.pem...))

	for _, tc := range []struct {
		name   string
		pair   Pair
		serial string
		chain  int
	}{
		{"ecdsa", writePair(t, dir, "ec", ec), ec.serial, 1},
		{"rsa", writePair(t, dir, "rsa", rs), rs.serial, 1},
		{"cert and key in one file", Pair{CertFile: combined, KeyFile: combined}, ec.serial, 1},
		{"leaf then intermediate", chainPair, chain.serial, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Check(tc.pair)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if c.Leaf == nil {
				t.Fatal("Leaf not set")
			}
			if got := c.Leaf.SerialNumber.Text(16); got != tc.serial {
				t.Errorf("leaf serial %s, want %s", got, tc.serial)
			}
			if !bytes.Equal(c.Leaf.Raw, c.Certificate[0]) {
				t.Error("Leaf is not Certificate[0]")
			}
			if len(c.Certificate) != tc.chain {
				t.Errorf("chain of %d certificates, want %d", len(c.Certificate), tc.chain)
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	good := ca.issue(t, leafSpec{dns: []string{"good.test"}})
	other := ca.issue(t, leafSpec{dns: []string{"other.test"}})
	p := writePair(t, dir, "good", good)
	file := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		writeFile(t, path, data)
		return path
	}
	garbage := file("garbage.pem", []byte("this is not PEM\n"))
	empty := file("empty.pem", nil)
	badDER := file("bad-der.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	otherKey := file("other.key", other.keyPEM)
	chainFirstCA := file("ca-first.crt", append(append([]byte{}, ca.pem...), good.certPEM...))
	encrypted := file("enc.key", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	missing := filepath.Join(dir, "missing.pem")

	for _, tc := range []struct {
		name string
		pair Pair
		key  string // the setting named
		path string // the file named
		want string // in the message
	}{
		{"missing cert file", Pair{missing, p.KeyFile}, "cert_file", missing, "no such file"},
		{"missing key file", Pair{p.CertFile, missing}, "key_file", missing, "no such file"},
		{"empty cert path", Pair{"", p.KeyFile}, "cert_file", "", "is empty"},
		{"garbage cert PEM", Pair{garbage, p.KeyFile}, "cert_file", garbage, "no PEM data"},
		{"garbage key PEM", Pair{p.CertFile, garbage}, "key_file", garbage, "no PEM data"},
		{"empty key file", Pair{p.CertFile, empty}, "key_file", empty, "is empty"},
		{"certificate that does not parse", Pair{badDER, p.KeyFile}, "cert_file", badDER, "certificate 1:"},
		{"mismatched key", Pair{p.CertFile, otherKey}, "key_file", otherKey, "does not match cert_file " + p.CertFile},
		{"files swapped", Pair{p.KeyFile, p.CertFile}, "cert_file", p.KeyFile, "swapped"},
		{"certificate as key", Pair{p.CertFile, p.CertFile}, "key_file", p.CertFile, "swapped"},
		{"leaf not first", Pair{chainFirstCA, p.KeyFile}, "cert_file", chainFirstCA, "leaf certificate must come first"},
		{"encrypted key", Pair{p.CertFile, encrypted}, "key_file", encrypted, "encrypted"},
		{"directory as cert", Pair{dir, p.KeyFile}, "cert_file", dir, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.pair)
			if err == nil {
				t.Fatal("Check accepted it")
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q (%T) is not a *FileError", err, err)
			}
			if fe.Key != tc.key || fe.Path != tc.path {
				t.Errorf("error names %s %q, want %s %q", fe.Key, fe.Path, tc.key, tc.path)
			}
			prefix := tc.key + " " + tc.path + ": "
			if tc.path == "" {
				prefix = tc.key + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to begin with %q and contain %q", err, prefix, tc.want)
			}
		})
	}

	t.Run("missing file is fs.ErrNotExist", func(t *testing.T) {
		if _, err := Check(Pair{missing, p.KeyFile}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v is not fs.ErrNotExist", err)
		}
	})
	t.Run("oversized file", func(t *testing.T) {
		big := filepath.Join(dir, "big.pem")
		if err := os.WriteFile(big, bytes.Repeat([]byte("A"), maxFileSize+1), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Check(Pair{big, p.KeyFile})
		if err == nil || !strings.HasPrefix(err.Error(), "cert_file "+big+": larger than") {
			t.Errorf("error %v, want cert_file %s: larger than ...", err, big)
		}
	})
}

func TestCheckCA(t *testing.T) {
	ca1, ca2 := newCA(t, "CA 1"), newCA(t, "CA 2")
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	writeFile(t, bundle, append(append([]byte("# comment before the blocks\n"), ca1.pem...), ca2.pem...))
	pool, err := CheckCA(bundle)
	if err != nil {
		t.Fatalf("CheckCA: %v", err)
	}
	if !pool.Equal(func() *x509.CertPool { p := ca1.pool(); p.AddCert(ca2.cert); return p }()) {
		t.Error("pool does not hold both CAs")
	}

	leaf := ca1.issue(t, leafSpec{dns: []string{"x.test"}})
	withKey := filepath.Join(dir, "with-key.pem")
	writeFile(t, withKey, append(append([]byte{}, ca1.pem...), leaf.keyPEM...))
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not a CA\n"))
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct{ path, want string }{
		{withKey, "holds a private key"},
		{garbage, "no PEM data"},
		{missing, "no such file"},
	} {
		_, err := CheckCA(tc.path)
		if err == nil || !strings.HasPrefix(err.Error(), "ca_file "+tc.path+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckCA(%s) = %v, want ca_file %s: ...%s", tc.path, err, tc.path, tc.want)
		}
	}
}

func TestNewErrorsNameTheSetting(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	a := writePair(t, dir, "a", ca.issue(t, leafSpec{dns: []string{"a.test"}}))
	b := writePair(t, dir, "b", ca.issue(t, leafSpec{dns: []string{"b.test"}}))
	bBroken := Pair{CertFile: b.CertFile, KeyFile: a.KeyFile}
	missing := filepath.Join(dir, "missing.pem")

	for _, tc := range []struct {
		name string
		opts Options
		want string // the error's beginning
	}{
		{"no pairs", Options{}, "certificates: none given"},
		{"second pair bad", Options{Pairs: []Pair{a, bBroken}},
			"certificates[1].key_file " + a.KeyFile + ": does not match cert_file " + b.CertFile},
		{"first pair missing", Options{Pairs: []Pair{{missing, a.KeyFile}, b}},
			"certificates[0].cert_file " + missing + ": no such file"},
		{"CA missing", Options{Pairs: []Pair{a}, ClientCAFile: missing},
			"client_auth.ca_file " + missing + ": no such file"},
		{"required without CA", Options{Pairs: []Pair{a}, ClientAuthRequired: true}, "client_auth.required: needs client_auth.ca_file"},
		{"bad min version", Options{Pairs: []Pair{a}, MinVersion: 0x0200}, "min_version: 0x0200 is not a TLS version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.opts)
			if err == nil {
				t.Fatalf("New accepted it: %v", s.Certificates())
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want it to begin with %q", err, tc.want)
			}
		})
	}
}
