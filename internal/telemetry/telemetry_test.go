package telemetry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAccess(t *testing.T) {
	loop, _ := ParseAllow("")
	lan, err := ParseAllow("10.0.0.0/8, 192.168.1.5")
	if err != nil {
		t.Fatal(err)
	}
	anyone, _ := ParseAllow("any")
	if _, err := ParseAllow("10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR was accepted")
	}
	for _, tc := range []struct {
		name   string
		access Access
		remote string
		auth   string
		want   int
	}{
		{"default: loopback", Access{}, "127.0.0.1:5000", "", 200},
		{"default: IPv6 loopback", Access{Allow: loop}, "[::1]:5000", "", 200},
		{"default: not the LAN", Access{}, "10.1.2.3:5000", "", 403},
		{"CIDR", Access{Allow: lan}, "10.1.2.3:5000", "", 200},
		{"address", Access{Allow: lan}, "192.168.1.5:5000", "", 200},
		{"outside", Access{Allow: lan}, "192.168.1.6:5000", "", 403},
		{"mapped IPv4", Access{Allow: lan}, "[::ffff:10.0.0.1]:5000", "", 200},
		{"token required", Access{Allow: anyone, Token: "s3cret"}, "8.8.8.8:1", "", 403},
		{"wrong token", Access{Allow: anyone, Token: "s3cret"}, "8.8.8.8:1", "Bearer nope", 403},
		{"right token", Access{Allow: anyone, Token: "s3cret"}, "8.8.8.8:1", "Bearer s3cret", 200},
		{"token but outside", Access{Allow: lan, Token: "s3cret"}, "8.8.8.8:1", "Bearer s3cret", 403},
	} {
		h := Handler(NewRegistry(), tc.access, nil, http.NotFoundHandler())
		r := httptest.NewRequest(http.MethodGet, MetricsPath, nil)
		r.RemoteAddr = tc.remote
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
	}
	// Health and readiness are open to everyone; everything else passes through.
	h := Handler(NewRegistry(), Access{}, func(context.Context) error { return errNotReady }, http.NotFoundHandler())
	for path, want := range map[string]int{HealthPath: 200, ReadyPath: 503, "/bucket/key": 404} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = "8.8.8.8:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
	}
}

var errNotReady = errors.New("two nodes live, a write needs five")
