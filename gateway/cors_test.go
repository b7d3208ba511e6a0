package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

// TestCORSParsedOnce: requests with an Origin reuse the parsed rules of
// their bucket's configuration until it changes.
func TestCORSParsedOnce(t *testing.T) {
	g := &Gateway{}
	rule := func(origin string) string {
		return `<CORSConfiguration><CORSRule><AllowedOrigin>` + origin + `</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`
	}
	b := metadata.Bucket{Name: "b", CORS: rule("http://a.example")}
	for range 100 {
		if c, ok := g.bucketCORS(b); !ok || c.Rules[0].AllowedOrigins[0] != "http://a.example" {
			t.Fatalf("%+v %v", c, ok)
		}
	}
	b.CORS = rule("http://b.example")
	if c, ok := g.bucketCORS(b); !ok || c.Rules[0].AllowedOrigins[0] != "http://b.example" {
		t.Fatalf("after a change: %+v %v", c, ok)
	}
	if n := g.corsParses.Load(); n != 2 {
		t.Fatalf("%d parses for 101 requests over 2 configurations", n)
	}
}

// TestCORSBodyBounded: a configuration over 64 KB is refused before it
// can reach etcd (whose requests are limited to 1.5 MiB).
func TestCORSBodyBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("<CORSConfiguration>")
	for i := range 100 {
		fmt.Fprintf(&b, "<CORSRule><AllowedOrigin>http://%s.example</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>", strings.Repeat(fmt.Sprint(i%10), 700))
	}
	b.WriteString("</CORSConfiguration>")
	if _, err := s3.ParseCORS([]byte(b.String())); err == nil {
		t.Fatalf("a %d-byte CORS configuration accepted", b.Len())
	}
}
