package tlscert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/zkgate/zkgate/internal/filewatch"
)

// maxFileSize bounds what is read from a certificate, key or CA file. A real
// chain or CA bundle is a few tens of kilobytes; the bound keeps a path that
// names /dev/zero or a log file from exhausting memory.
const maxFileSize = 1 << 20

// Pair names the PEM files of one certificate: CertFile holds the leaf
// certificate first, then any intermediates; KeyFile holds its private key
// (PKCS #8, PKCS #1 or SEC 1). Both may name the same file when it holds the
// chain and the key.
type Pair struct{ CertFile, KeyFile string }

// FileError is the error of one file: Key says which setting named it
// ("cert_file", "key_file", "ca_file", prefixed by New with where the
// setting sits, e.g. "certificates[1].key_file"), Path is the file. Its text
// begins with the key, so a caller prepends its own key path and a dot to get
// the full one: "entry_points.websecure.tls." + err.Error().
type FileError struct {
	Key  string
	Path string
	Err  error
}

func (e *FileError) Error() string {
	if e.Path == "" {
		return e.Key + ": " + e.Err.Error()
	}
	return e.Key + " " + e.Path + ": " + e.Err.Error()
}

func (e *FileError) Unwrap() error { return e.Err }

// Check reads and parses one pair: each file exists and is readable, the
// certificate file holds at least one certificate and every certificate in it
// parses, the key file holds a private key of a kind TLS can use, and the key
// matches the first (leaf) certificate. The returned certificate has Leaf
// set. An expired certificate is not an error: Store reports it.
//
// The error is a *FileError naming "cert_file" or "key_file" and the path,
// e.g. `key_file /etc/x.key: does not match cert_file /etc/x.crt`.
func Check(p Pair) (*tls.Certificate, error) {
	certPEM, err := readPEMFile("cert_file", p.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM := certPEM
	if p.KeyFile != p.CertFile {
		if keyPEM, err = readPEMFile("key_file", p.KeyFile); err != nil {
			return nil, err
		}
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, &FileError{Key: "cert_file", Path: p.CertFile, Err: err}
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, &FileError{Key: "key_file", Path: p.KeyFile, Err: err}
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		for i, c := range chain[1:] {
			if ok && pub.Equal(c.PublicKey) {
				return nil, &FileError{Key: "cert_file", Path: p.CertFile,
					Err: fmt.Errorf("key_file %s matches certificate %d, not the first: the leaf certificate must come first", p.KeyFile, i+2)}
			}
		}
		return nil, &FileError{Key: "key_file", Path: p.KeyFile,
			Err: fmt.Errorf("does not match cert_file %s", p.CertFile)}
	}
	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// CheckCA reads a PEM bundle of CA certificates, as ClientCAFile names it,
// and returns them as a pool. The error is a *FileError naming "ca_file".
func CheckCA(path string) (*x509.CertPool, error) {
	data, err := readPEMFile("ca_file", path)
	if err != nil {
		return nil, err
	}
	pool, err := parseCAs(data)
	if err != nil {
		return nil, &FileError{Key: "ca_file", Path: path, Err: err}
	}
	return pool, nil
}

// readPEMFile reads the file a setting named, refusing an empty path, a
// directory or device, an empty or oversized file, and a file without PEM.
func readPEMFile(key, path string) ([]byte, error) {
	if path == "" {
		return nil, &FileError{Key: key, Err: errors.New("is empty; give the path of a PEM file")}
	}
	fail := func(err error) error { return &FileError{Key: key, Path: path, Err: err} }
	data, err := filewatch.ReadFile(path, maxFileSize)
	if err != nil {
		return nil, fail(err)
	}
	if b, _ := pem.Decode(data); b == nil {
		return nil, fail(errors.New("holds no PEM data"))
	}
	return data, nil
}

// isKeyBlock reports whether a PEM block type is a private key's
// ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", ...).
func isKeyBlock(typ string) bool {
	return typ == "PRIVATE KEY" || strings.HasSuffix(typ, " PRIVATE KEY")
}

// parseCertificates parses every CERTIFICATE block of a certificate file,
// leaf first. Other blocks (a key in a combined file) are skipped.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	sawKey := false
	for n := 1; ; {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", n, err)
			}
			chain = append(chain, c)
			n++
		case isKeyBlock(b.Type):
			sawKey = true
		}
	}
	if len(chain) == 0 {
		if sawKey {
			return nil, errors.New("holds a private key but no certificate (are cert_file and key_file swapped?)")
		}
		return nil, errors.New("holds no CERTIFICATE block")
	}
	return chain, nil
}

// parsePrivateKey parses the first private key block of a key file.
// Certificates before it (a combined file) are skipped.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	sawCert := false
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			sawCert = true
		}
		if !isKeyBlock(b.Type) {
			continue
		}
		if b.Headers["Proc-Type"] != "" || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("the private key is encrypted; give it unencrypted (e.g. openssl pkey -in KEY -out PLAIN)")
		}
		return parseKeyDER(b.Type, b.Bytes)
	}
	if sawCert {
		return nil, errors.New("holds a certificate but no private key (are cert_file and key_file swapped?)")
	}
	return nil, errors.New("holds no PRIVATE KEY block")
}

// parseKeyDER parses a key block by its type, accepting only the key kinds
// crypto/tls can sign with.
func parseKeyDER(typ string, der []byte) (crypto.Signer, error) {
	var key any
	var err error
	switch typ {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	default:
		return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.ToLower(typ), err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("private key of type %T: TLS needs RSA, ECDSA or Ed25519", key)
	}
}

// parseCAs parses a CA bundle: one or more CERTIFICATE blocks and nothing
// else. A private key in it is refused: a CA file is often shared widely.
func parseCAs(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", n+1, err)
			}
			pool.AddCert(c)
			n++
		case isKeyBlock(b.Type):
			return nil, errors.New("holds a private key; a CA file must hold only certificates")
		default:
			return nil, fmt.Errorf("PEM block %q: a CA file must hold only CERTIFICATE blocks", b.Type)
		}
	}
	if n == 0 {
		return nil, errors.New("holds no CERTIFICATE block")
	}
	return pool, nil
}
