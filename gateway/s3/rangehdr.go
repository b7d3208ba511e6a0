package s3

import (
	"net/http"
	"strconv"
	"strings"
)

// ErrInvalidRange answers a Range no byte of the object satisfies.
var ErrInvalidRange = &Error{"InvalidRange", "The requested range is not satisfiable", http.StatusRequestedRangeNotSatisfiable}

// ParseRange interprets a Range header against an object of size bytes.
// It returns ok=false when the whole object should be sent: no header, a
// header that is not one well-formed byte range (S3 ignores those, and
// multiple ranges), and it returns ErrInvalidRange when the range is
// well-formed but unsatisfiable.
func ParseRange(h string, size int64) (off, length int64, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	if first == "" { // suffix: the last N bytes
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n < 0 {
			return 0, 0, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, false, ErrInvalidRange
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	a, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || a < 0 {
		return 0, 0, false, nil
	}
	b := size - 1
	if last != "" {
		if b, perr = strconv.ParseInt(last, 10, 64); perr != nil || b < a {
			return 0, 0, false, nil
		}
	}
	if a >= size {
		return 0, 0, false, ErrInvalidRange
	}
	b = min(b, size-1)
	return a, b - a + 1, true, nil
}
