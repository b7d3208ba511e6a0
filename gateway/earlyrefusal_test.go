package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEarlyRefusalClosesConnection: a request refused before its body is
// read (here: a bad signature on a 64 MiB PUT, and a PUT to a bucket that
// does not exist) is answered at once with Connection: close, and the
// connection is closed rather than drained: the client stops sending,
// and a client that reuses its body for a retry learns at once that the
// old attempt is over.
func TestEarlyRefusalClosesConnection(t *testing.T) {
	f := newFixture(t)
	addr := f.mc.EndpointURL().Host
	now := time.Now().UTC()
	for _, tc := range []struct {
		name, path, auth string
		want             int
	}{
		{"bad signature", "/faults/big", "AWS4-HMAC-SHA256 Credential=ak/" + now.Format("20060102") + "/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("0", 64), http.StatusForbidden},
		{"anonymous write", "/faults/big", "", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			const size = 64 << 20
			hdr := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\nX-Amz-Date: %s\r\n",
				tc.path, addr, size, now.Format("20060102T150405Z"))
			if tc.auth != "" {
				hdr += "Authorization: " + tc.auth + "\r\n"
			}
			if _, err := io.WriteString(conn, hdr+"\r\n"+strings.Repeat("x", 1<<20)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if !resp.Close {
				t.Errorf("response without Connection: close (header %q)", resp.Header.Get("Connection"))
			}
			// The server closes instead of reading the other 63 MiB.
			if _, err := br.ReadByte(); err != io.EOF && !isReset(err) {
				t.Errorf("connection still open after the refusal: %v", err)
			}
		})
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}
