package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/daemon"
)

// TestStalledAnonymousPutsReleaseConnections (#23 item 5, review finding;
// the auditor's repro): anonymous PUTs that send one chunk of their body
// and then nothing, as many as the gateway's MaxConns, are refused and
// their connections closed within BodyTimeout: a fresh request is served
// soon after. Before the fix the HTTP server, reading what the refusing
// handler left of each body to reuse its connection, waited with no read
// deadline: the three connections were held for ever and no other
// request was served (the auditor's: still none 75 s later; here: 5 s).
func TestStalledAnonymousPutsReleaseConnections(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.ScrubInterval = -1, -1
		c.MaxConns = 3
		c.Limits = gateway.Limits{BodyTimeout: 500 * time.Millisecond}
	})
	addr := hostPort(s.Gateway.URL)
	for i := range 3 {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "PUT /nobucket%d/k HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", i, addr); err != nil {
			t.Fatal(err)
		}
	}
	var last error
	served := func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			last = err
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			last = err
			return false
		}
		resp.Body.Close()
		return true
	}
	deadline := time.Now().Add(5 * time.Second)
	for !served() {
		if time.Now().After(deadline) {
			t.Fatalf("no fresh request served within 5 s of 3 stalled anonymous PUTs (MaxConns 3): %v", last)
		}
	}
}

// TestStalledTelemetryBodyReleasesConnection (#23 item 5, review
// finding): a request to a telemetry path of the gateway's port (served
// before the S3 handler and its bounds) whose body stalls after one chunk
// is answered and its connection closed within BodyTimeout. Before the
// fix: no answer, the connection held for ever (here: 5 s).
func TestStalledTelemetryBodyReleasesConnection(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.ScrubInterval = -1, -1
		c.Limits = gateway.Limits{BodyTimeout: 500 * time.Millisecond}
	})
	addr := hostPort(s.Gateway.URL)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /_sherd/health HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", addr); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within 5 s: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection not closed within 5 s of a stalled body: %v", err)
	}
}
