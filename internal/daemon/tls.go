package daemon

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
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// TLSFiles name a process's TLS certificate and key (PEM) for serving,
// and the CA bundle it trusts beyond the cluster CA and the system's when
// it calls nodes.
type TLSFiles struct {
	Cert, Key string
	CA        string
}

// serving returns the server TLS configuration with at least TLS version
// minVersion, nil when no certificate is set. Errors: a missing or bad
// file, or only one of Cert and Key.
func (f TLSFiles) serving(minVersion uint16) (*tls.Config, error) {
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
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minVersion}, nil
}

// nodeRoots is the pool that verifies nodes' certificates: the cluster
// CA derived from key, and the CA file's if set. Not the system's CAs:
// anyone holding a publicly trusted certificate for a node's name could
// otherwise stand in for it (node certificates from a public CA need
// --tls-ca naming that CA).
func nodeRoots(key []byte, caFile string) (*x509.CertPool, error) {
	ca, err := DeriveClusterCA(key)
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

// ClusterCA is the certificate authority every process of a cluster
// derives from the cluster key: the same key (ed25519, its seed an
// HKDF-SHA256 of the cluster key) and, from a fixed template, the same
// certificate, byte for byte, in every process. Nodes without
// certificates of their own serve one it signs at startup; gateways,
// healers and sherdctl trust it. Whoever holds the cluster key can sign
// node API requests already, so the CA adds no one to the cluster's
// trust: it only makes node traffic confidential and tamper-evident
// without a PKI to run.
type ClusterCA struct {
	Cert *x509.Certificate
	DER  []byte
	key  ed25519.PrivateKey
}

// DeriveClusterCA derives the cluster CA of key.
func DeriveClusterCA(key []byte) (*ClusterCA, error) {
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
	return &ClusterCA{Cert: cert, DER: der, key: priv}, nil
}

// PEM is the CA certificate in PEM (for Prometheus and other clients of
// the nodes' ports: `sherd cluster-ca`).
func (ca *ClusterCA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.DER})
}

// Issue makes a server certificate for hosts (IP addresses or DNS
// names), with a fresh ed25519 key that lives only in memory, signed by
// the CA and valid from an hour before now (clock skew) as long as the CA.
func (ca *ClusterCA) Issue(hosts []string, now time.Time) (tls.Certificate, error) {
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

// nodeListen is how a node serves its API.
type nodeListen struct {
	tls    *tls.Config // nil: plain HTTP
	advert string      // its advertised URL
	host   string      // the advertised URL's host (and port): the only one it answers signed requests for
}

// nodeServing decides how a node listening on addr serves: over HTTPS
// with the operator's certificate (files) or, by default, one the
// cluster CA of key signs now for the host of the advertised URL and the
// listen address; over plain HTTP only when plaintext is asked for. The
// advertised URL defaults to <scheme>://<addr> and must have the scheme
// the node serves.
func nodeServing(files TLSFiles, key []byte, plaintext bool, advert string, addr net.Addr, log *slog.Logger) (nodeListen, error) {
	scheme := "https"
	if plaintext {
		if files.Cert != "" || files.Key != "" {
			return nodeListen{}, errors.New("--insecure-plaintext and --tls-cert/--tls-key exclude each other")
		}
		scheme = "http"
	}
	if advert == "" {
		advert = scheme + "://" + addr.String()
	}
	u, err := url.Parse(advert)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return nodeListen{}, fmt.Errorf("advertised URL %q: want http(s)://host[:port]", advert)
	}
	if u.Scheme != scheme {
		if plaintext {
			return nodeListen{}, fmt.Errorf("advertised URL %s: the node serves plain HTTP (--insecure-plaintext): advertise http://", advert)
		}
		return nodeListen{}, fmt.Errorf("advertised URL %s: the node serves HTTPS: advertise https://, or (on a network you trust entirely) start it with --insecure-plaintext", advert)
	}
	out := nodeListen{advert: strings.TrimSuffix(advert, "/"), host: u.Host}
	if plaintext {
		log.Warn("node API served over plain HTTP (--insecure-plaintext): anyone on the network path can read shards and substitute the bytes gateways read", "url", out.advert)
		return out, nil
	}
	if out.tls, err = files.serving(tls.VersionTLS13); err != nil || out.tls != nil {
		return out, err
	}
	ca, err := DeriveClusterCA(key)
	if err != nil {
		return nodeListen{}, err
	}
	hosts := []string{u.Hostname()}
	if tcp, ok := addr.(*net.TCPAddr); ok && !tcp.IP.IsUnspecified() && tcp.IP.String() != u.Hostname() {
		hosts = append(hosts, tcp.IP.String())
	}
	cert, err := ca.Issue(hosts, time.Now())
	if err != nil {
		return nodeListen{}, err
	}
	out.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	return out, nil
}
