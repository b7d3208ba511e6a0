package gateway

// Object handlers: PUT, GET/HEAD, DELETE, DeleteObjects, CopyObject.
//
// Invariants:
//   - An object becomes visible only through its commit (one etcd txn
//     with its preconditions); the body is read to its verified end before
//     that, so a bad signature, digest or length never commits anything.
//   - Shards of a segment whose commit failed definitively (precondition,
//     bucket gone) are deleted; after an ambiguous failure (etcd timeout)
//     they are left (for the anti-entropy sweep, not written yet), because
//     the commit may have landed.
//   - A GET answers its status line only once the first bytes are
//     reconstructed, so "too few shards" is a clean 503; a failure later
//     aborts the connection rather than ending a short body cleanly.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

// Limits from AWS.
const (
	maxKeyLen   = 1024
	maxUserMeta = 2048
	// maxStoredHeaders bounds the standard headers stored with an object
	// (Content-Type, Cache-Control, Content-Disposition, …), which go into
	// its etcd value: AWS refuses request headers over 8 KB.
	maxStoredHeaders = 8 << 10
	maxPutSize       = 5 << 30
	maxObjectSize    = 5 << 40 // a completed multipart upload, as AWS
	metaPrefix       = "X-Amz-Meta-"
	defaultCType     = "binary/octet-stream"
	checksumModeOn   = "ENABLED"
)

// storedHeaders are the standard headers kept with an object and returned.
var storedHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires"}

// unsupportedPutHeaders select features Sherd does not have.
var unsupportedPutHeaders = []string{
	"X-Amz-Server-Side-Encryption", "X-Amz-Server-Side-Encryption-Customer-Algorithm",
	"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", "X-Amz-Website-Redirect-Location",
	"X-Amz-Grant-Read", "X-Amz-Grant-Full-Control", "X-Amz-Grant-Read-Acp", "X-Amz-Grant-Write-Acp",
}

// objectMeta is what a request says about the object it writes.
type objectMeta struct {
	contentType string
	headers     map[string]string
	userMeta    map[string]string
	acl         string // canned ACL ("": private)
	tags        map[string]string
	lock        *metadata.Lock
}

func parseObjectMeta(h http.Header) (objectMeta, error) {
	for _, k := range unsupportedPutHeaders {
		if h.Get(k) != "" {
			return objectMeta{}, s3.Errorf(s3.ErrNotImplemented, "header %s", k)
		}
	}
	acl, err := objectACL(h.Get("X-Amz-Acl"))
	if err != nil {
		return objectMeta{}, err
	}
	tags, err := parseTaggingHeader(h.Get("X-Amz-Tagging"))
	if err != nil {
		return objectMeta{}, err
	}
	switch sc := h.Get("X-Amz-Storage-Class"); sc {
	case "", "STANDARD":
	default:
		return objectMeta{}, s3.Errorf(s3.ErrNotImplemented, "storage class %s", sc)
	}
	m := objectMeta{contentType: h.Get("Content-Type"), headers: map[string]string{}, userMeta: map[string]string{}, acl: acl, tags: tags}
	for _, k := range storedHeaders {
		if v := h.Get(k); v != "" {
			m.headers[k] = v
		}
	}
	// aws-chunked is a transfer detail, not the object's encoding: it is
	// taken out; any other value is kept byte for byte ("deflate, gzip").
	if ce, ok := m.headers["Content-Encoding"]; ok {
		var keep []string
		chunked := false
		for _, e := range strings.Split(ce, ",") {
			switch e = strings.TrimSpace(e); {
			case strings.EqualFold(e, "aws-chunked"):
				chunked = true
			case e != "":
				keep = append(keep, e)
			}
		}
		switch {
		case len(keep) == 0:
			delete(m.headers, "Content-Encoding")
		case chunked:
			m.headers["Content-Encoding"] = strings.Join(keep, ",")
		}
	}
	size := 0
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, metaPrefix); ok {
			name = strings.ToLower(name)
			v := strings.Join(vs, ",")
			m.userMeta[name] = v
			size += len(name) + len(v)
		}
	}
	if size > maxUserMeta {
		return m, errMetadataTooLarge
	}
	stored := len(m.contentType)
	for k, v := range m.headers {
		stored += len(k) + len(v)
	}
	if stored > maxStoredHeaders {
		return m, errHeadersTooLarge
	}
	return m, nil
}

// writePrecondition reads If-Match / If-None-Match of a write.
func writePrecondition(h http.Header) (metadata.Precondition, error) {
	pre := metadata.Precondition{IfMatch: trimETag(h.Get("If-Match")), IfNoneMatch: trimETag(h.Get("If-None-Match"))}
	if pre.IfNoneMatch != "" && pre.IfNoneMatch != "*" {
		return pre, s3.Errorf(s3.ErrNotImplemented, "If-None-Match on a write supports only *")
	}
	return pre, nil
}

func trimETag(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	return strings.Trim(s, `"`)
}

// countingReader enforces a body's declared length.
type countingReader struct {
	r    io.Reader
	n    int64
	want int64 // -1: unknown
	max  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errEntityTooLarge
	}
	if c.want >= 0 && c.n > c.want {
		return n, s3.Errorf(s3.ErrInvalidChunk, "body longer than declared")
	}
	if err == io.EOF && c.want >= 0 && c.n != c.want {
		return n, s3.Errorf(s3.ErrInvalidChunk, "body of %d bytes, %d declared", c.n, c.want)
	}
	if err != nil && err != io.EOF {
		var se *s3.Error
		if !errors.As(err, &se) {
			err = s3.Wrapf(s3.ErrInvalidChunk, err, "the body could not be read")
		}
	}
	return n, err
}

// bodyLength is the object length the request declares (-1 unknown).
func bodyLength(r *http.Request) (int64, error) {
	if d := r.Header.Get("X-Amz-Decoded-Content-Length"); d != "" {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 {
			return 0, s3.Errorf(s3.ErrInvalidArgument, "x-amz-decoded-content-length")
		}
		return n, nil
	}
	if _, chunked := r.Body.(*s3.ChunkedBody); chunked {
		return -1, nil
	}
	if r.ContentLength < 0 {
		if len(r.TransferEncoding) > 0 { // Transfer-Encoding: chunked, no Content-Length (some SDKs)
			return -1, nil
		}
		return 0, errMissingContentLength
	}
	return r.ContentLength, nil
}

func (g *Gateway) putObject(w http.ResponseWriter, r *http.Request) {
	b, key, err := g.writeTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	meta, err := parseObjectMeta(r.Header)
	if err == nil {
		meta.lock, err = writeLock(r.Header, b, g.now())
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	pre, err := writePrecondition(r.Header)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	bv, err := g.requestBody(r, s3.CRC64NVME)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	obj, vid, err := g.writeObject(r, b, key, bv, meta, pre, "ObjectCreated:Put")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	setVersionHeader(w, vid)
	w.Header().Set("ETag", `"`+obj.ETag+`"`)
	for algo, v := range obj.Checksums {
		w.Header().Set(s3.ChecksumHeader(algo), v)
	}
	if obj.ChecksumType != "" {
		w.Header().Set("X-Amz-Checksum-Type", obj.ChecksumType)
	}
	w.WriteHeader(http.StatusOK)
}

// writeObject stores the body read through bv as one segment and commits
// it as bucket/key.
// event names the notification (ObjectCreated:Put, :Copy, :Post).
// It returns the object and its S3 version id ("" in an unversioned bucket).
func (g *Gateway) writeObject(r *http.Request, b metadata.Bucket, key string, bv *s3.BodyVerifier, meta objectMeta, pre metadata.Precondition, event string) (metadata.Object, string, error) {
	ctx := r.Context()
	seg, missing, ok, err := g.cluster.WriteSegment(ctx, bv, cluster.Profile(b.Profile))
	if err != nil {
		return metadata.Object{}, "", err
	}
	cctx, cancel := g.cluster.CommitContext(ctx) // see cluster.Config.CommitWindow
	defer cancel()
	if !ok { // empty body: read to its (verified) end by writeSegment
		seg = metadata.Segment{}
	}
	md5 := bv.MD5() // writeSegment read the body to its verified end
	seg.MD5 = hex.EncodeToString(md5)
	obj := metadata.Object{
		Bucket: b.Name, Key: key, VersionID: cluster.NewID(), Size: bv.Size(), ETag: hex.EncodeToString(md5),
		ContentType: meta.contentType, Headers: meta.headers, UserMeta: meta.userMeta, ACL: meta.acl, Tags: meta.tags, Lock: meta.lock,
		Checksums: bv.Checksums(), ChecksumType: s3.ChecksumFullObject, ModTime: g.now().UTC(),
	}
	if ok {
		obj.Segments = []metadata.Segment{seg}
	}
	vid, err := g.store.PutObject(cctx, obj, pre, g.events(r, b, event, key, obj.Size, obj.ETag)...)
	if err != nil {
		// Refused, so nothing names the segment: it goes now.
		if ok && (errors.Is(err, metadata.ErrPreconditionFailed) || errors.Is(err, metadata.ErrNoSuchKey) || errors.Is(err, metadata.ErrNoSuchBucket) || errors.Is(err, metadata.ErrInvalid)) {
			g.cluster.DiscardSegment(seg)
		}
		return metadata.Object{}, "", err
	}
	if len(missing) > 0 {
		g.cluster.QueueRepair(seg, missing, "put")
	}
	return obj, vid, nil
}

// checksumAlgo is the algorithm of the object's stored checksum ("" if none).
func checksumAlgo(o metadata.Object) string {
	for _, a := range s3.ChecksumAlgorithms {
		if _, ok := o.Checksums[a]; ok {
			return a
		}
	}
	return ""
}

func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// readPreconditions evaluates conditional GET/HEAD headers (RFC 7232
// order, as S3 does): it returns 0 to go on, or 304 / 412.
func readPreconditions(h http.Header, etag string, mod time.Time) int {
	mod = mod.Truncate(time.Second)
	matches := func(list string) bool {
		for _, e := range strings.Split(list, ",") {
			if e = trimETag(e); e == "*" || e == etag {
				return true
			}
		}
		return false
	}
	if im := h.Get("If-Match"); im != "" {
		if !matches(im) {
			return http.StatusPreconditionFailed
		}
	} else if ius := h.Get("If-Unmodified-Since"); ius != "" {
		if t, err := http.ParseTime(ius); err == nil && mod.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if inm := h.Get("If-None-Match"); inm != "" {
		if matches(inm) {
			return http.StatusNotModified
		}
	} else if ims := h.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !mod.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// responseOverrides maps response-* query parameters to the header each sets.
var responseOverrides = s3.ResponseOverrides

// objectHeaders are the headers describing obj in a GET/HEAD answer.
func objectHeaders(obj metadata.Object) http.Header {
	h := http.Header{}
	h.Set("ETag", `"`+obj.ETag+`"`)
	h.Set("Last-Modified", httpTime(obj.ModTime))
	h.Set("Accept-Ranges", "bytes")
	ct := obj.ContentType
	if ct == "" {
		ct = defaultCType
	}
	h.Set("Content-Type", ct)
	for k, v := range obj.Headers {
		h.Set(k, v)
	}
	for k, v := range obj.UserMeta {
		h[metaPrefix+k] = []string{v} // keep the case the client sent
	}
	setTaggingCount(h, obj)
	setLockHeaders(h, obj)
	return h
}

func (g *Gateway) getObject(w http.ResponseWriter, r *http.Request) {
	b, obj, err := g.readableObject(w, r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	anon := reqOf(r).id.Anonymous
	for p := range responseOverrides {
		if q.Has(p) && anon {
			g.writeError(w, r, s3.Errorf(errInvalidRequest, "Request specific response headers cannot be used for anonymous GET requests."))
			return
		}
	}
	hdr := objectHeaders(obj)
	if vid := versionOf(b, obj, q.Has("versionId")); vid != "" {
		hdr.Set("X-Amz-Version-Id", vid)
	}
	switch readPreconditions(r.Header, obj.ETag, obj.ModTime) {
	case http.StatusNotModified:
		for _, k := range []string{"ETag", "Last-Modified", "Cache-Control", "Expires"} {
			if v := hdr.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(http.StatusNotModified)
		return
	case http.StatusPreconditionFailed:
		g.writeError(w, r, errPreconditionFailed)
		return
	}
	var off, length int64
	var partial bool
	if q.Has("partNumber") {
		off, length, partial, err = partRange(q.Get("partNumber"), obj)
		if partial {
			hdr.Set("X-Amz-Mp-Parts-Count", strconv.Itoa(obj.PartCount))
		}
	} else {
		off, length, partial, err = s3.ParseRange(r.Header.Get("Range"), obj.Size)
	}
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", obj.Size))
		g.writeError(w, r, err)
		return
	}
	if !partial {
		off, length = 0, obj.Size
		if strings.EqualFold(r.Header.Get("X-Amz-Checksum-Mode"), checksumModeOn) {
			if algo := checksumAlgo(obj); algo != "" {
				hdr.Set(s3.ChecksumHeader(algo), obj.Checksums[algo])
				hdr.Set("X-Amz-Checksum-Type", obj.ChecksumType)
			}
		}
	}
	for p, h := range responseOverrides {
		if v := q.Get(p); v != "" {
			hdr.Set(h, v)
		}
	}
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, obj.Size))
	}
	hdr.Set("Content-Length", strconv.FormatInt(length, 10))
	lw := &lazyWriter{w: w, hdr: hdr, status: status}
	if r.Method == http.MethodHead || length == 0 {
		lw.start()
		return
	}
	defer g.pinRead(obj)()
	if err := g.cluster.ReadObject(r.Context(), lw, obj, off, length); err != nil {
		if !lw.started {
			g.writeError(w, r, err)
			return
		}
		g.log.Error("GET failed mid-stream", "bucket", b.Name, "key", obj.Key, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// partRange is the byte range of part n of obj (GetObject?partNumber=n).
// An object that was not uploaded in parts is its own part 1.
func partRange(n string, obj metadata.Object) (off, length int64, partial bool, err error) {
	num, perr := strconv.Atoi(n)
	if perr != nil || num < 1 || num > maxParts {
		return 0, 0, false, s3.Errorf(s3.ErrInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive")
	}
	if obj.PartCount == 0 {
		if num != 1 {
			return 0, 0, false, errInvalidPartNum
		}
		return 0, obj.Size, false, nil
	}
	if num > len(obj.Segments) {
		return 0, 0, false, errInvalidPartNum
	}
	for _, s := range obj.Segments[:num-1] {
		off += s.Size
	}
	return off, obj.Segments[num-1].Size, true, nil
}

// lazyWriter sends the status line and headers with the first bytes.
type lazyWriter struct {
	w       http.ResponseWriter
	hdr     http.Header
	status  int
	started bool
}

func (l *lazyWriter) start() {
	if l.started {
		return
	}
	l.started = true
	for k, v := range l.hdr {
		l.w.Header()[k] = v
	}
	l.w.WriteHeader(l.status)
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.start()
	return l.w.Write(p)
}

func (g *Gateway) deleteObject(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	pre := metadata.Precondition{IfMatch: trimETag(r.Header.Get("If-Match"))}
	vid, err := versionParam(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	rm, err := g.deleteVersion(r, b, reqOf(r).key, vid, pre)
	if err != nil && !(errors.Is(err, metadata.ErrNoSuchKey) && pre.IfMatch == "") {
		g.writeError(w, r, err)
		return
	}
	setRemovalHeaders(w, rm)
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) deleteObjects(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var req s3.DeleteRequest
	if err := decodeBody(r, s3.MaxXMLBody, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	if len(req.Objects) == 0 || len(req.Objects) > 1000 {
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "%d objects", len(req.Objects)))
		return
	}
	res := s3.DeleteResult{XMLNS: s3.XMLNS}
	for _, o := range req.Objects {
		var err error
		var rm metadata.Removal
		switch {
		case o.Key == "" || len(o.Key) > maxKeyLen:
			err = errKeyTooLong
		default:
			rm, err = g.deleteVersion(r, b, o.Key, o.VersionID, metadata.Precondition{})
		}
		if err != nil && !errors.Is(err, metadata.ErrNoSuchKey) {
			se := toS3(err)
			res.Errors = append(res.Errors, s3.DeleteErrorEntry{Key: o.Key, VersionID: o.VersionID, Code: se.Code, Message: se.Message})
			continue
		}
		if !req.Quiet {
			e := s3.DeletedEntry{Key: o.Key, VersionID: o.VersionID, DeleteMarker: rm.DeleteMarker}
			if rm.DeleteMarker && o.VersionID == "" {
				e.DeleteMarkerVersionID = rm.VersionID
			}
			res.Deleted = append(res.Deleted, e)
		}
	}
	g.writeXML(w, r, res)
}

// copySource parses x-amz-copy-source: "[/]bucket/key[?versionId=v]", URL-encoded.
func copySource(h string) (bucket, key, version string, err error) {
	src, query, _ := strings.Cut(h, "?")
	if query != "" {
		vals, _ := url.ParseQuery(query)
		if vals.Has("versionId") {
			if version = vals.Get("versionId"); version == "" {
				return "", "", "", s3.Errorf(s3.ErrInvalidArgument, "Invalid version id specified")
			}
		}
	}
	dec, uerr := url.PathUnescape(src)
	if uerr != nil {
		return "", "", "", s3.Errorf(s3.ErrInvalidArgument, "Invalid copy source encoding")
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(dec, "/"), "/")
	if !ok || bucket == "" || key == "" {
		return "", "", "", s3.Errorf(s3.ErrInvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	}
	return bucket, key, version, nil
}

// copySourcePreconditions evaluates x-amz-copy-source-if-*: any failure is 412.
func copySourcePreconditions(h http.Header, etag string, mod time.Time) error {
	c := http.Header{}
	for _, k := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if v := h.Get("X-Amz-Copy-Source-" + k); v != "" {
			c.Set(k, v)
		}
	}
	if readPreconditions(c, etag, mod) != 0 {
		return errPreconditionFailed
	}
	return nil
}

// writeTarget is the bucket and key a write names, with the caller's
// access to the bucket and the key's length checked.
func (g *Gateway) writeTarget(r *http.Request) (metadata.Bucket, string, error) {
	b, err := g.bucket(r)
	key := reqOf(r).key
	if err == nil && len(key) > maxKeyLen {
		err = errKeyTooLong
	}
	return b, key, err
}

// copySourceObject loads the object x-amz-copy-source names and checks the
// x-amz-copy-source-if-* conditions on it.
// A versionId in it names a version; a delete marker cannot be copied
// (400 by id, 404 as the latest version, as AWS). The answer carries
// x-amz-copy-source-version-id when the source bucket has versioning.
func (g *Gateway) copySourceObject(w http.ResponseWriter, r *http.Request) (metadata.Object, error) {
	sb, sk, vid, err := copySource(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		return metadata.Object{}, err
	}
	b, err := g.store.GetBucket(r.Context(), sb)
	if err != nil {
		return metadata.Object{}, err
	}
	var src metadata.Object
	if vid == "" {
		src, err = g.store.GetObject(r.Context(), sb, sk)
	} else {
		src, err = g.store.GetObjectVersion(r.Context(), sb, sk, vid)
		if err == nil && src.DeleteMarker {
			err = s3.Errorf(errInvalidRequest, "The source of a copy request may not specifically refer to a delete marker by version id.")
		}
	}
	if err != nil {
		return metadata.Object{}, err
	}
	if v := versionOf(b, src, vid != ""); v != "" {
		w.Header().Set("X-Amz-Copy-Source-Version-Id", v)
	}
	return src, copySourcePreconditions(r.Header, src.ETag, src.ModTime)
}

// sourceReader streams length bytes of src from off through a verifier
// computing algo; the caller reads it to EOF (or stops early) and calls
// done, which stops the read (its context is cancelled) and returns once
// the goroutine reading the source has ended.
func (g *Gateway) sourceReader(r *http.Request, src metadata.Object, off, length int64, algo string) (bv *s3.BodyVerifier, done func(), err error) {
	ctx, cancel := context.WithCancel(r.Context())
	pr, pw := io.Pipe()
	ended := make(chan struct{})
	unpin := g.pinRead(src) // a long copy keeps its source, as a GET does
	go func() {
		defer close(ended)
		pw.CloseWithError(g.cluster.ReadObject(ctx, pw, src, off, length))
	}()
	stop := func() {
		cancel()
		pr.Close() // a write to the pipe fails at once
		<-ended
		unpin()
	}
	bv, err = s3.NewBodyVerifier(pr, http.Header{}, nil, algo)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return bv, stop, nil
}

// requestBody wraps the request body: its declared length enforced (at
// most maxPutSize), its digests and checksums verified; alwaysAlgo is
// computed even when the client sent no checksum.
func (g *Gateway) requestBody(r *http.Request, alwaysAlgo string) (*s3.BodyVerifier, error) {
	size, err := bodyLength(r)
	if err != nil {
		return nil, err
	}
	if size > maxPutSize {
		return nil, errEntityTooLarge
	}
	var trailers func() http.Header
	if cb, ok := r.Body.(*s3.ChunkedBody); ok {
		trailers = cb.Trailers
	}
	return s3.NewBodyVerifier(&countingReader{r: r.Body, want: size, max: maxPutSize}, r.Header, trailers, alwaysAlgo)
}

func (g *Gateway) copyObject(w http.ResponseWriter, r *http.Request) {
	b, key, err := g.writeTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if r.Header.Get("X-Amz-Copy-Source-Range") != "" {
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "Range specified is not valid for source object"))
		return
	}
	src, err := g.copySourceObject(w, r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	sb, sk := src.Bucket, src.Key
	if src.Size > maxPutSize {
		g.writeError(w, r, s3.Errorf(errInvalidRequest, "The specified copy source is larger than the maximum allowable size for a copy source: %d", int64(maxPutSize)))
		return
	}
	directive := r.Header.Get("X-Amz-Metadata-Directive")
	var meta objectMeta
	switch directive {
	case "", "COPY":
		m, err := parseObjectMeta(r.Header) // still refuse unsupported features
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		// The ACL is not copied: the copy has the one the request names.
		meta = objectMeta{contentType: src.ContentType, headers: src.Headers, userMeta: src.UserMeta, acl: m.acl, tags: m.tags}
		if sb == b.Name && sk == key && r.Header.Get("X-Amz-Checksum-Algorithm") == "" {
			g.writeError(w, r, s3.Errorf(errInvalidRequest, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."))
			return
		}
	case "REPLACE":
		if meta, err = parseObjectMeta(r.Header); err != nil {
			g.writeError(w, r, err)
			return
		}
	default:
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "Unknown metadata directive."))
		return
	}
	if meta.lock, err = writeLock(r.Header, b, g.now()); err != nil { // the lock is not copied
		g.writeError(w, r, err)
		return
	}
	switch r.Header.Get("X-Amz-Tagging-Directive") {
	case "", "COPY":
		meta.tags = src.Tags
	case "REPLACE":
	default:
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "Unknown tagging directive."))
		return
	}
	pre, err := writePrecondition(r.Header)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	algo := checksumAlgo(src)
	if a := r.Header.Get("X-Amz-Checksum-Algorithm"); a != "" {
		algo = strings.ToUpper(a)
		if s3.NewChecksum(algo) == nil {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "x-amz-checksum-algorithm"))
			return
		}
	}
	if algo == "" {
		algo = s3.CRC64NVME
	}
	bv, done, err := g.sourceReader(r, src, 0, src.Size, algo)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	defer done()
	obj, vid, err := g.writeObject(r, b, key, bv, meta, pre, "ObjectCreated:Copy")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	setVersionHeader(w, vid)
	res := s3.CopyObjectResult{XMLNS: s3.XMLNS, LastModified: s3.FormatTime(obj.ModTime), ETag: `"` + obj.ETag + `"`}
	switch a := checksumAlgo(obj); a {
	case s3.CRC32:
		res.ChecksumCRC32 = obj.Checksums[a]
	case s3.CRC32C:
		res.ChecksumCRC32C = obj.Checksums[a]
	case s3.CRC64NVME:
		res.ChecksumCRC64 = obj.Checksums[a]
	case s3.SHA1:
		res.ChecksumSHA1 = obj.Checksums[a]
	case s3.SHA256:
		res.ChecksumSHA256 = obj.Checksums[a]
	}
	g.writeXML(w, r, res)
}
