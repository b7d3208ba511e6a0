package storagenode_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sherdstore/sherd/storagenode"
)

// TestRefusedStalledBodyBounded (#23 item 5, review finding): a request
// the API refuses without reading its body (unsigned; a path it does not
// serve), whose client sends one chunk of the body and then nothing, is
// answered and its connection closed within the drain timeout; an
// unsigned one is answered Connection: close. Before the fix the HTTP
// server, reading what the handler left of the body to reuse the
// connection, waited with no read deadline: no answer, and the
// connection held for ever (here: 5 s) by anyone who reaches the port.
func TestRefusedStalledBodyBounded(t *testing.T) {
	api := storagenode.NewServer(openStore(t, t.TempDir()), []byte("k"), nil, nil)
	api.SetDrainTimeout(300 * time.Millisecond)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		name, path string
		status     int
		close      bool
	}{
		{"unsigned", "/v1/shards/0123456789abcdef0123456789abcdef.1?block=4096", http.StatusForbidden, true},
		{"unknown path", "/shards/0123456789abcdef0123456789abcdef.1?block=4096", http.StatusNotFound, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", tc.path, addr); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer within 5 s: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("answered %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.close && !resp.Close {
				t.Errorf("refusal without Connection: close")
			}
			if _, err := br.ReadByte(); err != io.EOF && (err == nil || !strings.Contains(err.Error(), "reset")) {
				t.Errorf("connection not closed within 5 s of a stalled body: %v", err)
			}
		})
	}
}
