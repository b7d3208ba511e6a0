// Package backoff is the one exponential backoff of Sherd's retries: a
// wait that doubles from Min with each failure in a row, up to Max, and
// jitter that spreads the retries of many callers. Pure: the random source
// is passed in.
package backoff

import "time"

// Policy is an exponential backoff. The zero value waits nothing.
type Policy struct {
	Min, Max time.Duration
}

// Delay is the wait after n failures in a row: Min for n ≤ 1, doubling
// with each further failure, never more than Max.
func (p Policy) Delay(n int) time.Duration {
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Jitter is d plus a random share of it: up to frac·d more (rnd returns
// a number in [0, 1), as math/rand/v2's Float64).
func Jitter(d time.Duration, frac float64, rnd func() float64) time.Duration {
	return d + time.Duration(float64(d)*frac*rnd())
}

// Spread is d scaled into [d/2, d): "equal jitter", for retries that must
// not wait longer than the policy says.
func Spread(d time.Duration, rnd func() float64) time.Duration {
	return d/2 + time.Duration(float64(d/2)*rnd())
}
