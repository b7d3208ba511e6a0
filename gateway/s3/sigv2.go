package s3

// SigV2 verification (header "AWS AKID:sig" and presigned query
// AWSAccessKeyId/Expires/Signature), for older clients.
//
// Invariants: the signature is recomputed from what the server received
// and compared in constant time; signed requests carry a Date (or
// x-amz-date) within MaxClockSkew; presigned URLs expire at Expires, at
// most MaxPresignExpiry ahead. SigV2 signs no payload hash, so the body is
// checked only by Content-MD5 when the client sends one.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SubResources are the S3 query parameters that select an operation other
// than the plain one on a service, bucket or object (the gateway's routes
// use this list).
var SubResources = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
	"intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging",
	"metadataTable", "metrics", "notification", "object-lock", "ownershipControls",
	"partNumber", "policy", "policyStatus", "publicAccessBlock", "renameObject", "replication",
	"requestPayment", "restore", "retention", "select", "session", "tagging", "torrent",
	"uploadId", "uploads", "versionId", "versioning", "versions", "website",
}

// ResponseOverrides maps the response-* query parameters of a GET to the
// response header each sets.
var ResponseOverrides = map[string]string{
	"response-content-type": "Content-Type", "response-content-language": "Content-Language",
	"response-expires": "Expires", "response-cache-control": "Cache-Control",
	"response-content-disposition": "Content-Disposition", "response-content-encoding": "Content-Encoding",
}

// v2SubResources are the query parameters that are part of the SigV2
// canonical resource, sorted as they are written: every subresource that
// selects an operation (so a signature for one operation never holds for
// another, e.g. CreateBucket's for PutObjectLockConfiguration), the
// response overrides, and select-type.
var v2SubResources = func() []string {
	l := append(slices.Clone(SubResources), "select-type")
	for k := range ResponseOverrides {
		l = append(l, k)
	}
	slices.Sort(l)
	return slices.Compact(l)
}()

// IsV2 says whether r carries a SigV2 signature.
func IsV2(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Authorization"), "AWS ") || r.URL.Query().Has("AWSAccessKeyId")
}

// VerifyV2 authenticates a SigV2 request. vhostBucket is the bucket named
// by the Host header of a virtual-hosted-style request ("" for path style):
// SigV2's canonical resource starts with it.
func (v *Verifier) VerifyV2(r *http.Request, vhostBucket string) (Identity, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		cred, ok := strings.CutPrefix(auth, "AWS ")
		ak, sig, ok2 := strings.Cut(cred, ":")
		if !ok || !ok2 || ak == "" || sig == "" {
			return Identity{}, Errorf(ErrAuthHeaderMalformed, "SigV2 Authorization")
		}
		date := r.Header.Get("X-Amz-Date")
		if date == "" {
			date = r.Header.Get("Date")
		}
		t, err := http.ParseTime(date)
		if err != nil {
			t, err = time.Parse(time.RFC1123Z, date)
		}
		if err != nil {
			return Identity{}, Errorf(ErrAccessDenied, "AWS authentication requires a valid Date or x-amz-date header")
		}
		if d := v.now().Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
			return Identity{}, ErrRequestTimeTooSkewed
		}
		secret, err := v.creds.SecretKey(ak)
		if err != nil {
			return Identity{}, err
		}
		dates := []string{r.Header.Get("Date")}
		if r.Header.Get("X-Amz-Date") != "" {
			dates = append(dates, "")
		}
		for _, d := range dates {
			for _, res := range v2Resources(r, vhostBucket) {
				if v2Match(secret, v2StringToSign(r, d, res), sig) {
					return Identity{AccessKey: ak}, nil
				}
			}
		}
		return Identity{}, ErrSignatureDoesNotMatch
	}
	q := r.URL.Query()
	ak, exp, sig := q.Get("AWSAccessKeyId"), q.Get("Expires"), q.Get("Signature")
	if ak == "" || exp == "" || sig == "" {
		return Identity{}, Errorf(ErrAuthQueryMalformed, "SigV2 query needs AWSAccessKeyId, Expires and Signature")
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return Identity{}, Errorf(ErrAuthQueryMalformed, "Expires")
	}
	now := v.now()
	expires := time.Unix(secs, 0)
	if now.After(expires) {
		return Identity{}, ErrExpiredPresign
	}
	if expires.Sub(now) > MaxPresignExpiry+MaxClockSkew {
		return Identity{}, ErrPresignExpiryTooLong
	}
	secret, err := v.creds.SecretKey(ak)
	if err != nil {
		return Identity{}, err
	}
	for _, res := range v2Resources(r, vhostBucket) {
		if v2Match(secret, v2StringToSign(r, exp, res), sig) {
			return Identity{AccessKey: ak, Presigned: true}, nil
		}
	}
	return Identity{}, ErrSignatureDoesNotMatch
}

func v2Match(secret, sts, sig string) bool {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(sts))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(want), []byte(sig))
}

// v2StringToSign: verb, Content-MD5, Content-Type, date (or Expires),
// canonical x-amz-* headers, canonical resource.
func v2StringToSign(r *http.Request, date, resource string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n" + r.Header.Get("Content-Md5") + "\n" + r.Header.Get("Content-Type") + "\n" + date + "\n")
	var names []string
	for k := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-amz-") {
			names = append(names, lk)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		vals := r.Header.Values(k)
		for i := range vals {
			vals[i] = strings.TrimSpace(vals[i])
		}
		b.WriteString(k + ":" + strings.Join(vals, ",") + "\n")
	}
	b.WriteString(resource)
	return b.String()
}

// v2Resources returns the canonical resources a client may have signed:
// the path as sent and as re-encoded, with the sub-resources.
func v2Resources(r *http.Request, vhostBucket string) []string {
	prefix := ""
	if vhostBucket != "" {
		prefix = "/" + vhostBucket
	}
	paths := []string{prefix + r.URL.EscapedPath()}
	if p := uriEncode(prefix+r.URL.Path, false); p != paths[0] {
		paths = append(paths, p)
	}
	sub := v2SubResourceString(r.URL.RawQuery)
	for i := range paths {
		paths[i] += sub
	}
	return paths
}

func v2SubResourceString(raw string) string {
	vals, _ := url.ParseQuery(raw)
	var b strings.Builder
	for _, k := range v2SubResources {
		vv, ok := vals[k]
		if !ok {
			continue
		}
		if b.Len() == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(k)
		if len(vv) > 0 && vv[0] != "" {
			b.WriteString("=" + vv[0])
		}
	}
	return b.String()
}
