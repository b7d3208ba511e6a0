package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// stalledRequest sends head and the start of a body on a connection of
// its own, and then nothing.
func stalledRequest(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// answeredAndClosed: the answer on conn is status, and then the server
// closes the connection, all within 5 s.
func answeredAndClosed(t *testing.T, conn net.Conn, status int) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within 5 s: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Errorf("answered %d, want %d", resp.StatusCode, status)
	}
	if _, err := br.ReadByte(); err != io.EOF && !isReset(err) {
		t.Errorf("connection not closed within 5 s of a stalled body: %v", err)
	}
}

// TestStalledBodyOfRefusedRequestBounded (#23 item 5, review finding): a
// request refused before its body is read, whose client sends the start
// of the body and then nothing, is answered and its connection closed
// within BodyTimeout, whether it is refused by a handler (an anonymous
// write) or at admission (before the progress bounds used to be
// applied). Before the fix the HTTP server, reading what the handler
// left of the body to reuse the connection, waited with no read deadline:
// no answer and the connection held for ever (here: 5 s), so that a few
// such connections took all of a gateway's MaxConns. A body sent whole is
// still drained and its connection kept alive, past BodyTimeout too.
func TestStalledBodyOfRefusedRequestBounded(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	chunked := func(addr string) string {
		return fmt.Sprintf("PUT /faults/k HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", addr)
	}
	for _, tc := range []struct {
		name   string
		limits Limits
		head   func(addr string) string
		status int
	}{
		{"chunked, refused by the handler", Limits{BodyTimeout: bodyTimeout}, chunked, http.StatusForbidden},
		{"short Content-Length, refused by the handler", Limits{BodyTimeout: bodyTimeout}, func(addr string) string {
			return fmt.Sprintf("PUT /faults/k HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n0123456789", addr)
		}, http.StatusForbidden},
		{"Expect: 100-continue, refused by the handler", Limits{BodyTimeout: bodyTimeout}, func(addr string) string {
			return fmt.Sprintf("PUT /faults/k HTTP/1.1\r\nHost: %s\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", addr)
		}, http.StatusForbidden},
		// The bucket creation of the fixture takes the client's only
		// token: the PUT is refused at admission.
		{"chunked, refused at admission", Limits{BodyTimeout: bodyTimeout, LimitLoopback: true, PerAddr: Rate{PerSecond: 1e-3, Burst: 1}},
			chunked, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, func(c *Config) { c.Limits = tc.limits })
			addr := f.mc.EndpointURL().Host
			answeredAndClosed(t, stalledRequest(t, addr, tc.head(addr)), tc.status)
		})
	}

	t.Run("a whole body keeps its connection", func(t *testing.T) {
		f := newFixtureWith(t, func(c *Config) { c.Limits = Limits{BodyTimeout: bodyTimeout} })
		addr := f.mc.EndpointURL().Host
		put := fmt.Sprintf("PUT /faults/k HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", addr)
		conn := stalledRequest(t, addr, put)
		br := bufio.NewReader(conn)
		for i := range 2 {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d on the connection: no answer: %v", i+1, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Close {
				t.Fatalf("request %d: answered %d (close %v), want 403 keeping the connection", i+1, resp.StatusCode, resp.Close)
			}
			if i == 0 {
				// Past the bound the drain had: the connection's next
				// request is not under it.
				time.Sleep(2 * bodyTimeout)
				conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(conn, put); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
