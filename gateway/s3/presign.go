package s3

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Presign returns a SigV4 presigned URL for method on endpoint (scheme and
// host) and path (the decoded /bucket/key), with extra query parameters
// (uploadId, partNumber, …). The URL signs only the host header, so a
// browser can use it as is.
func Presign(method, endpoint, path string, extra url.Values, accessKey, secret, region string, expires time.Duration, now time.Time) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	sc := scope{accessKey: accessKey, date: now.UTC().Format("20060102"), region: region, service: "s3"}
	amzDate := now.UTC().Format(amzDateFormat)
	q := url.Values{}
	for k, vs := range extra {
		q[k] = vs
	}
	q.Set("X-Amz-Algorithm", algorithm)
	q.Set("X-Amz-Credential", accessKey+"/"+sc.String())
	q.Set("X-Amz-Date", amzDate)
	q.Set("X-Amz-Expires", strconv.FormatInt(int64(expires/time.Second), 10))
	q.Set("X-Amz-SignedHeaders", "host")
	u.Path = path
	u.RawPath = uriEncode(path, false)
	u.RawQuery = q.Encode()
	r := &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}}
	sig := hmacHex(signingKey(secret, sc), stringToSign(amzDate, sc, canonicalRequest(r, uriEncode(path, false), []string{"host"}, UnsignedPayload, true, trimFields)))
	u.RawQuery += "&X-Amz-Signature=" + sig
	return u.String(), nil
}
