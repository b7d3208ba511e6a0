// Package clustertls is the TLS of node traffic: the cluster CA every
// process derives from the cluster key (DeriveCA), the certificates it
// issues to nodes that have none of their own, and the HTTP client that
// calls nodes trusting it (NodeClient). Standard library only: sherdctl,
// the gateways and the node processes share it without linking one
// another's parts.
package clustertls

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"
)

// NodeClient is the HTTP client gateways (and healers, sherdctl) use to
// reach nodes. The scheme comes from each node's URL: https (the
// default) verifies the node's certificate and its name against the
// cluster CA of key (DeriveCA) and caFile's CAs ("": none; not the
// system's, see roots), over TLS 1.3; plain http is for nodes started
// with --insecure-plaintext. Connections are kept alive and reused, so
// the handshake is paid once per connection, not per shard. Every call is
// bounded: dialing 5 s, TLS handshake 10 s, a response 60 s after its
// request was sent (shard streams have their own progress deadlines:
// cluster).
func NodeClient(key []byte, caFile string) (*http.Client, error) {
	pool, err := roots(key, caFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		DisableCompression:    true,
	}}, nil
}

// roots is the pool that verifies nodes' certificates: the cluster CA
// derived from key, and the CA file's if set. Not the system's CAs:
// anyone holding a publicly trusted certificate for a node's name could
// otherwise stand in for it (node certificates from a public CA need
// --tls-ca naming that CA).
func roots(key []byte, caFile string) (*x509.CertPool, error) {
	ca, err := DeriveCA(key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: no certificate in %s", caFile)
	}
	return pool, nil
}

// clusterCAInfo is the HKDF context of the cluster CA's key: a new
// version of the derivation changes it.
const clusterCAInfo = "sherd cluster CA v1"

// CA is the cluster's certificate authority, which every process of a
// cluster derives from the cluster key: the same key (ed25519, its seed an
// HKDF-SHA256 of the cluster key) and, from a fixed template, the same
// certificate, byte for byte, in every process. Nodes without
// certificates of their own serve one it signs at startup; gateways,
// healers and sherdctl trust it. Whoever holds the cluster key can sign
// node API requests already, so the CA adds no one to the cluster's
// trust: it only makes node traffic confidential and tamper-evident
// without a PKI to run.
type CA struct {
	Cert *x509.Certificate
	DER  []byte
	key  ed25519.PrivateKey
}

// DeriveCA derives the cluster CA of key.
func DeriveCA(key []byte) (*CA, error) {
	if len(key) == 0 {
		return nil, errors.New("cluster CA: no cluster key")
	}
	seed, err := hkdf.Key(sha256.New, key, nil, clusterCAInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	// Every field is fixed here (the key id too, which x509 would
	// otherwise compute its own way), so that the certificate does not
	// change with the Go release a process is built with.
	ski := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		SubjectKeyId:          ski[:20],
		Subject:               pkix.Name{CommonName: "Sherd cluster CA"},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // it signs node certificates only
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	// ed25519 signatures are deterministic: rand is not read.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	return &CA{Cert: cert, DER: der, key: priv}, nil
}

// PEM is the CA certificate in PEM (for Prometheus and other clients of
// the nodes' ports: `sherd cluster-ca`).
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.DER})
}

// Issue makes a server certificate for hosts (IP addresses or DNS
// names), with a fresh ed25519 key that lives only in memory, signed by
// the CA and valid from an hour before now (clock skew) as long as the CA.
func (ca *CA) Issue(hosts []string, now time.Time) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("cluster CA: a certificate for no host")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     ca.Cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cluster CA: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cluster CA: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}
