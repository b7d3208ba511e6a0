package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{
		{-1, 500 * time.Millisecond}, {0, 500 * time.Millisecond}, {1, 500 * time.Millisecond},
		{2, time.Second}, {3, 2 * time.Second}, {5, 8 * time.Second}, {6, 10 * time.Second}, {1000, 10 * time.Second},
	} {
		if got := p.Delay(c.n); got != c.want {
			t.Errorf("Delay(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := (Policy{}).Delay(3); got != 0 {
		t.Errorf("zero policy waits %v", got)
	}
	// A reference: Min·2^(n-1) capped, computed the slow way.
	for n := 1; n < 70; n++ {
		want := p.Min
		for range n - 1 {
			if want >= p.Max {
				break
			}
			want *= 2
		}
		if want > p.Max {
			want = p.Max
		}
		if got := p.Delay(n); got != want {
			t.Fatalf("Delay(%d) = %v, reference %v", n, got, want)
		}
	}
}

func TestJitter(t *testing.T) {
	d := 10 * time.Second
	for _, c := range []struct {
		r        float64
		jit, spr time.Duration
	}{{0, 10 * time.Second, 5 * time.Second}, {0.5, 11 * time.Second, 7500 * time.Millisecond}, {0.999999, 12*time.Second - 2*time.Microsecond, 10*time.Second - 5*time.Microsecond}} {
		rnd := func() float64 { return c.r }
		if got := Jitter(d, 0.2, rnd); got < c.jit-time.Microsecond || got > c.jit+time.Microsecond {
			t.Errorf("Jitter at %v = %v, want %v", c.r, got, c.jit)
		}
		if got := Spread(d, rnd); got < c.spr-time.Microsecond || got > c.spr+time.Microsecond {
			t.Errorf("Spread at %v = %v, want %v", c.r, got, c.spr)
		}
	}
}
