package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles name a process's TLS certificate and key (PEM) for serving,
// and the CA bundle it trusts beyond the system's when it calls nodes.
type TLSFiles struct {
	Cert, Key string
	CA        string
}

// serving returns the server TLS configuration, nil when no certificate
// is set. Errors: a missing or bad file, or only one of Cert and Key.
func (f TLSFiles) serving() (*tls.Config, error) {
	if f.Cert == "" && f.Key == "" {
		return nil, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tls: --tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// roots is the pool that verifies nodes' certificates: the system's, and
// the CA file's if set (nil: the system's only).
func (f TLSFiles) roots() (*x509.CertPool, error) {
	if f.CA == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: no certificate in %s", f.CA)
	}
	return pool, nil
}
