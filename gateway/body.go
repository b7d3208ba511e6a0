package gateway

// Bounded request bodies: the one way a handler reads a body it parses
// (XML configurations, ACL documents, DeleteObjects, …). Object data
// streams through requestBody instead.
//
// Invariant: a body is either refused whole or read to EOF. The verifying
// reader the SigV4 verifier put on r.Body checks the signed SHA-256 when
// it reaches EOF, so a body cut at a limit would never be checked: a
// signed request replayed with a padded body would pass. Past its limit a
// body is refused (MaxMessageLengthExceeded), never truncated.

import (
	"io"
	"net/http"

	"github.com/sherdstore/sherd/gateway/s3"
)

// Body limits of the configurations the gateway parses.
const (
	// maxLifecycleBody bounds a lifecycle configuration (up to 1,000
	// rules): it is stored in the bucket's etcd value, which every request
	// on the bucket reads, and must stay far below etcd's 1.5 MiB request
	// limit.
	maxLifecycleBody = 256 << 10
	// maxSmallXMLBody bounds documents of a few elements: ACLs, tag sets,
	// versioning, object lock, retention, legal hold, location.
	maxSmallXMLBody = 64 << 10
)

var errMaxMessageLength = &s3.Error{Code: "MaxMessageLengthExceeded", Message: "Your request was too big.", Status: http.StatusBadRequest}

// readBody reads r's whole body, at most limit bytes: a longer one is
// refused (as soon as its declared length says so, or at byte limit+1),
// a shorter one read to EOF, where a signed payload hash is checked.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, s3.Errorf(errMaxMessageLength, "The body exceeds the maximum of %d bytes for this request.", limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, s3.Errorf(errMaxMessageLength, "The body exceeds the maximum of %d bytes for this request.", limit)
	}
	// ReadAll stopped at EOF of the body (not at the limit): the
	// verifying reader has checked the hash.
	return b, nil
}

// decodeBody parses r's XML body, of at most limit bytes, into v.
func decodeBody(r *http.Request, limit int64, v any) error {
	b, err := readBody(r, limit)
	if err != nil {
		return err
	}
	return s3.UnmarshalXML(b, v)
}
