package wire

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// TestSignature: what SignRequest signs verifies; a change to anything
// signed, another key, a stale date or a v1 signature without v1
// acceptance does not.
func TestSignature(t *testing.T) {
	key, now := []byte("cluster-key"), time.Unix(2e9, 0)
	sign := func() *http.Request {
		r, _ := http.NewRequest("GET", "https://node-1:7000/v1/shards/x.0?verify=1", nil)
		r.Header.Set("Range", "bytes=0-9")
		r.Header.Set(HeaderHash, "abc")
		SignRequest(r, key, now)
		return r
	}
	if err := VerifyRequest(sign(), key, now, false); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
	for _, c := range []struct {
		name   string
		change func(r *http.Request)
		key    []byte
		at     time.Time
	}{
		{"host", func(r *http.Request) { r.Host = "node-2:7000" }, key, now},
		{"path", func(r *http.Request) { r.URL.Path = "/v1/shards/y.0" }, key, now},
		{"query", func(r *http.Request) { r.URL.RawQuery = "" }, key, now},
		{"range", func(r *http.Request) { r.Header.Set("Range", "bytes=0-99") }, key, now},
		{"range dropped", func(r *http.Request) { r.Header.Del("Range") }, key, now},
		{"sherd header", func(r *http.Request) { r.Header.Set(HeaderHash, "abd") }, key, now},
		{"sherd header added", func(r *http.Request) { r.Header.Set(HeaderBlock, "7") }, key, now},
		{"method", func(r *http.Request) { r.Method = "DELETE" }, key, now},
		{"other key", func(*http.Request) {}, []byte("other"), now},
		{"stale", func(*http.Request) {}, key, now.Add(MaxClockSkew + time.Second)},
		{"early", func(*http.Request) {}, key, now.Add(-MaxClockSkew - time.Second)},
		{"unsigned", func(r *http.Request) { r.Header.Del("Authorization") }, key, now},
	} {
		r := sign()
		c.change(r)
		if err := VerifyRequest(r, c.key, c.at, true); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: %v, want ErrUnauthorized", c.name, err)
		}
	}
}

// TestErrorCodes: every code maps back to its sentinel.
func TestErrorCodes(t *testing.T) {
	for code, want := range map[string]error{CodeNotFound: shard.ErrNotFound, CodeInvalid: shard.ErrInvalid, CodeCorrupt: shard.ErrCorrupt,
		CodeUnauthorized: ErrUnauthorized, CodeExists: shard.ErrExists, CodeFull: shard.ErrFull, CodeInternal: nil, "Nonsense": nil} {
		if got := ErrorForCode(code); got != want {
			t.Errorf("%s: %v, want %v", code, got, want)
		}
	}
}

// TestDigestsRoundTrip: the wire form of a node's children parses back;
// a wrong count or a bad digest is ErrInvalid.
func TestDigestsRoundTrip(t *testing.T) {
	var ch [merkle.Fanout]merkle.Digest
	for i := range ch {
		ch[i][0], ch[i][len(ch[i])-1] = byte(i), byte(255-i)
	}
	back, err := DigestsFromHex(DigestsToHex(ch))
	if err != nil || back != ch {
		t.Fatalf("round trip: %v", err)
	}
	hexes := DigestsToHex(ch)
	if _, err := DigestsFromHex(hexes[1:]); !errors.Is(err, shard.ErrInvalid) {
		t.Fatalf("15 digests: %v", err)
	}
	hexes[3] = "zz"
	if _, err := DigestsFromHex(hexes); !errors.Is(err, shard.ErrInvalid) {
		t.Fatalf("bad digest: %v", err)
	}
}
