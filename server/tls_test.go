package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key into dir.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	_ = os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

func TestTLSOptions(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	_ = os.WriteFile(junk, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		name      string
		opts      TLSOptions
		http, rpc bool // TLS on
		err       string
	}{
		{"plain", TLSOptions{}, false, false, ""},
		{"both", TLSOptions{HTTPCert: cert, HTTPKey: key, GRPCCert: cert, GRPCKey: key}, true, true, ""},
		{"mutual gRPC", TLSOptions{GRPCCert: cert, GRPCKey: key, GRPCRootCert: cert}, false, true, ""},
		{"missing HTTP key", TLSOptions{HTTPCert: cert, HTTPKey: filepath.Join(dir, "none.pem")}, false, false, "HTTP TLS"},
		{"root without server cert", TLSOptions{GRPCRootCert: cert}, false, false, "needs a server certificate"},
		{"junk root", TLSOptions{GRPCCert: cert, GRPCKey: key, GRPCRootCert: junk}, false, false, "holds no PEM certificate"},
		{"junk server cert", TLSOptions{GRPCCert: junk, GRPCKey: key}, false, false, "gRPC TLS"},
	} {
		_, err := New(Options{TLS: tc.opts}, testRepo(), nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		h, herr := tc.opts.httpTLS()
		g, gerr := tc.opts.grpcCredentials()
		if herr != nil || gerr != nil || (h != nil) != tc.http || (g != nil) != tc.rpc {
			t.Errorf("%s: HTTP TLS %v (%v), gRPC TLS %v (%v); want %v, %v", tc.name, h != nil, herr, g != nil, gerr, tc.http, tc.rpc)
		}
	}
}
