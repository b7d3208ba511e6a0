package test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	mcreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// writeTestPKI writes a CA and a certificate for 127.0.0.1 signed by it
// into dir, and returns the paths and the CA pool.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	noErr(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Sherd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	noErr(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	noErr(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	noErr(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	noErr(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	noErr(t, err)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		noErr(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER), pool
}

// TestTLSCluster runs nodes and a gateway with --tls-cert/--tls-key: the
// nodes advertise https and refuse plain HTTP, the gateway reaches them
// trusting --tls-ca, and an S3 client talks HTTPS to the gateway.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile, pool := writeTestPKI(t, dir)
	cl := startCluster(t, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile)
	_, url := cl.startGateway(t, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile)
	if !strings.HasPrefix(url, "http://") {
		t.Fatalf("gateway URL %s", url)
	}
	host := strings.TrimPrefix(url, "http://")

	// The nodes advertise https, and do not speak plain HTTP.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cl.etcdURL}, DialTimeout: 5 * time.Second})
	noErr(t, err)
	defer cli.Close()
	var nodes []metadata.Node
	waitFor(t, "6 nodes registered", 20*time.Second, func() bool {
		nodes, _ = metaetcd.New(cli, metaetcd.Options{}).ListNodes(ctx)
		return len(nodes) == 6
	})
	for _, n := range nodes {
		if !strings.HasPrefix(n.Address, "https://") {
			t.Fatalf("node %s advertises %s", n.ID, n.Address)
		}
	}
	if resp, err := http.Get("http" + strings.TrimPrefix(nodes[0].Address, "https") + "/v1/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a TLS node answered plain HTTP")
		}
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	c, err := minio.New(host, &minio.Options{Creds: mcreds.NewStaticV4(rootUser, rootPass, ""), Secure: true,
		Region: "us-east-1", BucketLookup: minio.BucketLookupPath, Transport: tr})
	noErr(t, err)
	noErr(t, c.MakeBucket(ctx, "tls", minio.MakeBucketOptions{}))
	data := randomBytes(3<<20, 77)
	_, err = c.PutObject(ctx, "tls", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	noErr(t, err)
	obj, err := c.GetObject(ctx, "tls", "k", minio.GetObjectOptions{})
	noErr(t, err)
	if got := readAll(t, obj); !bytes.Equal(got, data) {
		t.Fatal("read back over TLS: wrong bytes")
	}
	// Plain HTTP to the gateway is refused too.
	if resp, err := http.Get("http://" + host + "/tls/k"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to a TLS gateway: %d", resp.StatusCode)
		}
	}
}
