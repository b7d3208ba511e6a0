package clustertls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cluster CA is a function of the cluster key: two derivations give
// the same certificate byte for byte (every process trusts the one every
// node's certificate chains to), another key gives another CA, and a
// certificate one CA issues verifies under it only.
func TestClusterCADerivedFromKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, err := DeriveCA(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DeriveCA(bytes.Clone(key))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.DER, b.DER) || !bytes.Equal(a.PEM(), b.PEM()) {
		t.Fatal("two derivations from one key differ")
	}
	// Every process, whatever Go release built it, derives these very
	// bytes: a change here would give processes of one cluster different
	// CAs during an upgrade (a new derivation needs a new clusterCAInfo
	// and a migration).
	if got := fmt.Sprintf("%x", sha256.Sum256(a.DER)); got != "1e042c486c1fb4e2a16683e4acb0ef6556d986bdb43bd145b8ff16ae572e7b84" {
		t.Fatalf("the cluster CA of the test key changed: sha256 %s", got)
	}
	other, err := DeriveCA([]byte("0123456789abcdef0123456789abcdeF"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.DER, other.DER) || a.Cert.PublicKey.(ed25519.PublicKey).Equal(other.Cert.PublicKey) {
		t.Fatal("another key derives the same CA")
	}
	if _, err := DeriveCA(nil); err == nil {
		t.Fatal("a CA from no key")
	}
	if !a.Cert.IsCA || a.Cert.Subject.CommonName != "Sherd cluster CA" || a.Cert.CheckSignatureFrom(a.Cert) != nil {
		t.Fatalf("not a self-signed CA: %+v", a.Cert.Subject)
	}
	leaf, err := a.Issue([]string{"node7.example", "10.1.2.3"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ca *CA, name string) error {
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		_, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name})
		return err
	}
	for _, name := range []string{"node7.example", "10.1.2.3"} {
		if err := verify(a, name); err != nil {
			t.Errorf("leaf for %s: %v", name, err)
		}
	}
	if verify(a, "node8.example") == nil || verify(other, "node7.example") == nil {
		t.Fatal("a leaf verified for another name or under another CA")
	}
}

// NodeClient trusts the cluster CA of its key and the CAs of its CA
// file, nothing else (not the system's), and speaks TLS 1.3 only.
func TestNodeClientTrust(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	ca, err := DeriveCA(key)
	if err != nil {
		t.Fatal(err)
	}
	operators, err := DeriveCA([]byte("an operator's own CA, for the test"))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(by *CA, maxVersion uint16) string {
		cert, err := by.Issue([]string{"127.0.0.1"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: maxVersion}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	get := func(hc *http.Client, url string) error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, operators.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, err := NodeClient(key, "")
	if err != nil {
		t.Fatal(err)
	}
	withFile, err := NodeClient(key, caFile)
	if err != nil {
		t.Fatal(err)
	}
	cluster, own, old := serve(ca, 0), serve(operators, 0), serve(ca, tls.VersionTLS12)
	for _, tc := range []struct {
		name   string
		hc     *http.Client
		url    string
		refuse string // "": answered
	}{
		{"cluster CA", plain, cluster, ""},
		{"cluster CA, with a CA file", withFile, cluster, ""},
		{"another CA", plain, own, "unknown authority"},
		{"another CA named in the CA file", withFile, own, ""},
		{"TLS 1.2 only", plain, old, "protocol version"},
	} {
		err := get(tc.hc, tc.url)
		switch {
		case tc.refuse == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.refuse)
		}
	}
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("no certificate here\n"), 0o600)
	for name, f := range map[string]func() error{
		"no key":          func() error { _, err := NodeClient(nil, ""); return err },
		"missing CA file": func() error { _, err := NodeClient(key, filepath.Join(dir, "none.pem")); return err },
		"empty CA file":   func() error { _, err := NodeClient(key, empty); return err },
	} {
		if f() == nil {
			t.Errorf("%s: a client", name)
		}
	}
}
