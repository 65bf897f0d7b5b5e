package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"

	"google.golang.org/grpc/credentials"
)

// TLSOptions are the certificate files of the HTTP and gRPC endpoints (PEM).
// An endpoint with a certificate and key serves TLS only; one without
// serves plain text.
type TLSOptions struct {
	// HTTPCert and HTTPKey serve HTTPS (--http-tls-cert, --http-tls-key).
	HTTPCert, HTTPKey string
	// GRPCCert and GRPCKey serve gRPC over TLS (--grpc-server-cert,
	// --grpc-server-key, with --grpc-use-ssl). GRPCRootCert, if set, is the
	// CA that signs client certificates, and every client must present one
	// (mutual TLS, --grpc-root-cert).
	GRPCCert, GRPCKey, GRPCRootCert string
}

// grpcCredentials loads the gRPC TLS credentials; nil when gRPC is plain.
func (t TLSOptions) grpcCredentials() (credentials.TransportCredentials, error) {
	if t.GRPCCert == "" && t.GRPCKey == "" {
		if t.GRPCRootCert != "" {
			return nil, fmt.Errorf("server: a gRPC root certificate needs a server certificate and key")
		}
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(t.GRPCCert, t.GRPCKey)
	if err != nil {
		return nil, fmt.Errorf("server: gRPC TLS: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if t.GRPCRootCert != "" {
		pem, err := os.ReadFile(t.GRPCRootCert)
		if err != nil {
			return nil, fmt.Errorf("server: gRPC root certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server: gRPC root certificate %s holds no PEM certificate", t.GRPCRootCert)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

// httpTLS loads the HTTP TLS configuration; nil when HTTP is plain.
func (t TLSOptions) httpTLS() (*tls.Config, error) {
	if t.HTTPCert == "" && t.HTTPKey == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(t.HTTPCert, t.HTTPKey)
	if err != nil {
		return nil, fmt.Errorf("server: HTTP TLS: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// serveHTTP serves srv on ln, over TLS when srv has a TLS configuration.
func (s *Server) serveHTTP(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	}
	return srv.Serve(ln)
}
