package gateway

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

// Limits of a POST form before its file part, as AWS applies them: the
// whole of it (part headers, field names and values alike) is read
// through a budget, so an anonymous client cannot make the gateway read or
// keep more than this before the policy signature is checked.
const (
	maxPostPreData = 20 << 10 // bytes of the form preceding the file
	maxFormFields  = 100      // fields preceding the file
)

var errMaxPostPreData = &s3.Error{Code: "MaxPostPreDataLengthExceeded", Message: "Your POST request fields preceding the upload file were too large.", Status: http.StatusBadRequest}

// preDataBudget passes at most n bytes of a form body until lift is
// called (the file part has begun), then everything.
type preDataBudget struct {
	r      io.Reader
	n      int64
	lifted bool
}

func (b *preDataBudget) Read(p []byte) (int, error) {
	if b.lifted {
		return b.r.Read(p)
	}
	if b.n <= 0 {
		return 0, errMaxPostPreData
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *preDataBudget) lift() { b.lifted = true }

// isForm matches a browser form upload.
func isForm(r *http.Request) bool {
	return strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "multipart/form-data")
}

// sizeRange enforces a policy's content-length-range on the file.
type sizeRange struct {
	r        io.Reader
	n        int64
	min, max int64
}

func (s *sizeRange) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.max >= 0 && s.n > s.max {
		return n, s3.ErrEntityTooLarge
	}
	if err == io.EOF && s.n < s.min {
		return n, s3.ErrEntityTooSmall
	}
	return n, err
}

// postObject is a browser form upload (POST policy). Until its policy
// verifies it is unauthenticated work (protect.go): its bucket is checked
// before any of the body is read, its fields before the file are bounded
// in bytes, count and overall time, and it holds a slot of the
// unauthenticated pool, traded for a MaxInFlight one once the policy
// verifies, before the file is read.
func (g *Gateway) postObject(w http.ResponseWriter, r *http.Request) {
	bucket := reqOf(r).bucket
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedPolicy, "no multipart boundary"))
		return
	}
	b, err := g.store.GetBucket(r.Context(), bucket)
	if err != nil {
		g.refusePost(w, r, err)
		return
	}
	// The fields before the file arrive within the pre-data timeout, in
	// all; the file then streams under the progress timeout only.
	readsUntil(r, time.Now().Add(g.limits.postPreDataTimeout()))
	budget := &preDataBudget{r: r.Body, n: maxPostPreData}
	mr := multipart.NewReader(budget, params["boundary"])
	fields := map[string]string{}
	header := http.Header{}
	var file *multipart.Part
	for count := 0; ; count++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			g.refusePost(w, r, postFormError(err))
			return
		}
		name := strings.ToLower(part.FormName())
		if name == "file" {
			budget.lift()
			file = part // the file is the last field that counts
			break
		}
		if count >= maxFormFields {
			g.refusePost(w, r, s3.Errorf(errMaxPostPreData, "more than %d fields precede the file", maxFormFields))
			return
		}
		v, err := io.ReadAll(part) // bounded by the budget
		if err != nil {
			g.refusePost(w, r, postFormError(err))
			return
		}
		fields[name] = string(v)
		header.Set(name, string(v))
	}
	if file == nil {
		g.refusePost(w, r, s3.Errorf(errInvalidArgument, "POST requires exactly one file upload per request."))
		return
	}
	key := fields["key"]
	if key == "" {
		g.refusePost(w, r, s3.Errorf(errInvalidArgument, "Bucket POST must contain a field named 'key'."))
		return
	}
	key = strings.ReplaceAll(key, "${filename}", file.FileName())
	if len(key) > maxKeyLen {
		g.refusePost(w, r, errKeyTooLong)
		return
	}
	_, policy, err := g.verifier.VerifyPost(fields, bucket)
	if err != nil {
		g.refusePost(w, r, err)
		return
	}
	// Verified: the file is authenticated work, in a MaxInFlight slot.
	if err := g.promote(r); err != nil {
		g.refusePost(w, r, err)
		return
	}
	readsUntil(r, time.Time{})
	header.Del("Key")
	header.Del("Acl")
	header.Del("Tagging")
	if acl := fields["acl"]; acl != "" {
		header.Set("X-Amz-Acl", acl)
	}
	meta, err := parseObjectMeta(header)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if meta.contentType == "" {
		meta.contentType = file.Header.Get("Content-Type")
	}
	if meta.lock, err = writeLock(header, b, g.now()); err != nil {
		g.writeError(w, r, err)
		return
	}
	if t := fields["tagging"]; t != "" {
		if meta.tags, err = parseTaggingXML(t, maxObjectTags); err != nil {
			g.writeError(w, r, err)
			return
		}
	}
	body := &sizeRange{r: &countingReader{r: file, want: -1, max: maxPutSize}, min: policy.MinSize, max: policy.MaxSize}
	bv, err := s3.NewBodyVerifier(body, header, nil, s3.CRC64NVME) // checksum fields are verified too
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	obj, vid, err := g.writeObject(r, b, key, bv, meta, metadata.Precondition{}, "ObjectCreated:Post")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	setVersionHeader(w, vid)
	etag := `"` + obj.ETag + `"`
	location := g.objectURL(r, b.Name, key)
	w.Header().Set("ETag", etag)
	w.Header().Set("Location", location)
	if redirect := fields["success_action_redirect"]; redirect != "" {
		if u, err := url.Parse(redirect); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			q := u.Query()
			q.Set("bucket", b.Name)
			q.Set("key", key)
			q.Set("etag", etag)
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
	}
	switch fields["success_action_status"] {
	case "200":
		w.WriteHeader(http.StatusOK)
	case "201":
		body, _ := xml.Marshal(s3.PostResponse{Location: location, Bucket: b.Name, Key: key, ETag: etag})
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(xml.Header))
		w.Write(body)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// objectURL is the absolute URL of an object as the client addressed the
// gateway (scheme from TLS or X-Forwarded-Proto, virtual-hosted or path
// style as the request was): POST answers it in Location, as AWS does.
func (g *Gateway) objectURL(r *http.Request, bucket, key string) string {
	scheme := requestScheme(r)
	if g.vhostBucket(r.Host) == bucket {
		return scheme + "://" + r.Host + "/" + url.PathEscape(key)
	}
	return scheme + "://" + r.Host + "/" + bucket + "/" + url.PathEscape(key)
}

// requestScheme is the scheme the client used: https behind TLS or a
// proxy that says so in X-Forwarded-Proto.
func requestScheme(r *http.Request) string {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return "https"
	}
	return "http"
}

// postFormError is the S3 error for a form that could not be read: one
// whose fields did not arrive in time (overall, or a read that made no
// progress) is RequestTimeout, as AWS answers.
func postFormError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, errMaxPostPreData), errors.Is(err, errRequestTimeout):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return s3.Wrapf(errRequestTimeout, err, "The fields of the form did not arrive in time.")
	}
	return s3.Errorf(s3.ErrMalformedPolicy, "%v", err)
}

// refusePost answers a refused form and closes the connection: the rest
// of its body is not read (an unauthenticated client gets no more of the
// gateway's time).
func (g *Gateway) refusePost(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Connection", "close")
	g.writeError(w, r, err)
}

// presignPath is the gateway's own endpoint that issues presigned URLs
// (not an S3 operation; "_sherd" can never be a bucket name).
const presignPath = "/_sherd/presign"

// PresignAnswer is the JSON answer of the presign endpoint.
type PresignAnswer struct {
	URL     string    `json:"url"`
	Method  string    `json:"method"`
	Expires time.Time `json:"expires"`
}

// presignEndpoint issues a presigned GET, PUT or UploadPart URL, signed
// with the caller's own credentials, for an application backend to hand
// to a browser. Query: method=GET|PUT, bucket, key, expires (seconds,
// default 3600, at most 7 days), and for UploadPart uploadId and
// partNumber. The caller must sign the request (SigV4 or SigV2).
func (g *Gateway) presignEndpoint(w http.ResponseWriter, r *http.Request) {
	id := reqOf(r).id
	if id.Anonymous {
		g.writeError(w, r, s3.ErrAccessDenied)
		return
	}
	q := r.URL.Query()
	method := strings.ToUpper(q.Get("method"))
	if method == "" {
		method = http.MethodGet
	}
	if method != http.MethodGet && method != http.MethodPut {
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "method must be GET or PUT"))
		return
	}
	bucket, key := q.Get("bucket"), q.Get("key")
	if bucket == "" || key == "" || len(key) > maxKeyLen {
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "bucket and key are required"))
		return
	}
	expires := time.Hour
	if v := q.Get("expires"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > s3.MaxPresignExpiry {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "expires must be 1 to 604800 seconds"))
			return
		}
		expires = time.Duration(secs) * time.Second
	}
	if _, err := g.store.GetBucket(r.Context(), bucket); err != nil {
		g.writeError(w, r, err)
		return
	}
	extra := url.Values{}
	if up := q.Get("uploadId"); up != "" {
		if method != http.MethodPut {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "UploadPart URLs are PUT"))
			return
		}
		n, err := strconv.Atoi(q.Get("partNumber"))
		if err != nil || n < 1 || n > maxParts {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "partNumber must be 1 to 10000"))
			return
		}
		if _, err := g.store.GetUpload(r.Context(), bucket, key, up); err != nil {
			g.writeError(w, r, err)
			return
		}
		extra.Set("uploadId", up)
		extra.Set("partNumber", strconv.Itoa(n))
	}
	secret, err := g.cfg.Credentials.SecretKey(id.AccessKey)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	scheme := requestScheme(r)
	now := g.now()
	u, err := s3.Presign(method, scheme+"://"+r.Host, "/"+bucket+"/"+key, extra, id.AccessKey, secret, g.cfg.Region, expires, now)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	body, _ := json.Marshal(PresignAnswer{URL: u, Method: method, Expires: now.Add(expires).UTC()})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}
