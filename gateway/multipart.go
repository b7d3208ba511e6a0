package gateway

// Multipart uploads. Each part is its own erasure-coded segment, written
// and indexed when the part lands (PutPart); completion commits an object
// that refers to the chosen parts' segments in one transaction whose size
// does not grow with the number of parts (see metadata/etcd).
//
// Invariants:
//   - A part is visible in ListParts only after its segment reached the
//     write quorum; a replaced part's segment goes to gc.
//   - Completion checks, against the stored parts: ascending part numbers,
//     matching ETags (and checksums when given), every part but the last at
//     least 5 MiB. The object's ETag is md5(part md5s)-N; its checksum is
//     the COMPOSITE (hash of part checksums, -N) or FULL_OBJECT (CRCs
//     combined) value, as AWS computes them.

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

const (
	minPartSize = 5 << 20
	maxParts    = 10000
)

var (
	errInvalidPart      = &s3.Error{Code: "InvalidPart", Message: "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.", Status: http.StatusBadRequest}
	errInvalidPartOrder = &s3.Error{Code: "InvalidPartOrder", Message: "The list of parts was not in ascending order. Parts must be ordered by part number.", Status: http.StatusBadRequest}
	errEntityTooSmall   = &s3.Error{Code: "EntityTooSmall", Message: "Your proposed upload is smaller than the minimum allowed object size.", Status: http.StatusBadRequest}
	errInvalidPartNum   = &s3.Error{Code: "InvalidPartNumber", Message: "The requested partnumber is not satisfiable", Status: http.StatusRequestedRangeNotSatisfiable}
)

func (g *Gateway) createUpload(w http.ResponseWriter, r *http.Request) {
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
	algo := strings.ToUpper(r.Header.Get("X-Amz-Checksum-Algorithm"))
	if algo != "" && s3.NewChecksum(algo) == nil {
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "Checksum algorithm provided is unsupported."))
		return
	}
	ctype := strings.ToUpper(r.Header.Get("X-Amz-Checksum-Type"))
	switch {
	case ctype != "" && algo == "":
		g.writeError(w, r, s3.Errorf(errInvalidRequest, "x-amz-checksum-type requires x-amz-checksum-algorithm"))
		return
	case ctype == "" && algo == s3.CRC64NVME, ctype == "" && algo == "":
		ctype = s3.ChecksumFullObject
	case ctype == "":
		ctype = s3.ChecksumComposite
	case ctype == s3.ChecksumFullObject && !s3.IsCRC(algo), ctype == s3.ChecksumComposite && algo == s3.CRC64NVME:
		g.writeError(w, r, s3.Errorf(errInvalidRequest, "The %s checksum type cannot be used with the %s checksum algorithm.", ctype, algo))
		return
	case ctype != s3.ChecksumFullObject && ctype != s3.ChecksumComposite:
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "x-amz-checksum-type"))
		return
	}
	u := metadata.Upload{Bucket: b.Name, Key: key, UploadID: cluster.NewID(), Initiated: g.now().UTC(),
		ContentType: meta.contentType, Headers: meta.headers, UserMeta: meta.userMeta, ACL: meta.acl, Tags: meta.tags, Lock: meta.lock, ChecksumAlgo: algo, ChecksumType: ctype}
	if err := g.store.CreateUpload(r.Context(), u); err != nil {
		g.writeError(w, r, err)
		return
	}
	if algo != "" {
		w.Header().Set("X-Amz-Checksum-Algorithm", algo)
		w.Header().Set("X-Amz-Checksum-Type", ctype)
	}
	g.writeXML(w, r, s3.InitiateMultipartUploadResult{XMLNS: s3.XMLNS, Bucket: b.Name, Key: key, UploadID: u.UploadID})
}

// upload loads the upload the request names (uploadId), checking access.
func (g *Gateway) upload(r *http.Request) (metadata.Bucket, metadata.Upload, error) {
	b, err := g.bucket(r)
	if err != nil {
		return b, metadata.Upload{}, err
	}
	u, err := g.store.GetUpload(r.Context(), b.Name, reqOf(r).key, r.URL.Query().Get("uploadId"))
	return b, u, err
}

// partTarget is the part number, bucket and upload an UploadPart(Copy) names.
func (g *Gateway) partTarget(r *http.Request) (int, metadata.Bucket, metadata.Upload, error) {
	num, err := partNumber(r)
	if err != nil {
		return 0, metadata.Bucket{}, metadata.Upload{}, err
	}
	b, u, err := g.upload(r)
	return num, b, u, err
}

func partNumber(r *http.Request) (int, error) {
	n, err := strconv.Atoi(r.URL.Query().Get("partNumber"))
	if err != nil || n < 1 || n > maxParts {
		return 0, s3.Errorf(s3.ErrInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive")
	}
	return n, nil
}

// partAlgo is the checksum every part of u gets.
func partAlgo(u metadata.Upload) string {
	if u.ChecksumAlgo != "" {
		return u.ChecksumAlgo
	}
	return s3.CRC64NVME
}

// partChecksums makes bv compute what the object's checksum is made of:
// the upload's algorithm (a part sent with another one is refused, as AWS
// does), or CRC64NVME for an upload created without one, whatever else the
// client sends (SDKs add CRC32 trailers to every part by default).
func partChecksums(u metadata.Upload, bv *s3.BodyVerifier) error {
	if u.ChecksumAlgo == "" {
		bv.Also(s3.CRC64NVME)
		return nil
	}
	for _, algo := range s3.ChecksumAlgorithms {
		if algo != u.ChecksumAlgo && bv.Computes(algo) && !bv.Computes(u.ChecksumAlgo) {
			return s3.Errorf(errInvalidRequest, "Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s",
				strings.ToLower(u.ChecksumAlgo), strings.ToLower(algo))
		}
	}
	bv.Also(u.ChecksumAlgo)
	return nil
}

// storePart writes the part read through bv and records it.
func (g *Gateway) storePart(r *http.Request, b metadata.Bucket, u metadata.Upload, num int, bv *s3.BodyVerifier) (metadata.Part, error) {
	seg, missing, ok, err := g.cluster.WriteSegment(r.Context(), bv, cluster.Profile(b.Profile))
	if err != nil {
		return metadata.Part{}, err
	}
	cctx, cancel := g.cluster.CommitContext(r.Context()) // see cluster.Config.CommitWindow
	defer cancel()
	if !ok {
		seg = metadata.Segment{}
	}
	seg.MD5 = hex.EncodeToString(bv.MD5())
	p := metadata.Part{Number: num, Size: bv.Size(), ETag: seg.MD5, Checksums: bv.Checksums(), Modified: g.now().UTC(), Segment: seg}
	if err := g.store.PutPart(cctx, u, p); err != nil {
		if ok && errors.Is(err, metadata.ErrNoSuchUpload) {
			g.cluster.DiscardSegment(seg)
		}
		return p, err
	}
	if len(missing) > 0 {
		g.cluster.QueueRepair(seg, missing, "put")
	}
	return p, nil
}

func (g *Gateway) uploadPart(w http.ResponseWriter, r *http.Request) {
	num, b, u, err := g.partTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	bv, err := g.requestBody(r, partAlgo(u))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := partChecksums(u, bv); err != nil {
		g.writeError(w, r, err)
		return
	}
	p, err := g.storePart(r, b, u, num, bv)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", `"`+p.ETag+`"`)
	for algo, v := range p.Checksums {
		w.Header().Set(s3.ChecksumHeader(algo), v)
	}
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) uploadPartCopy(w http.ResponseWriter, r *http.Request) {
	num, b, u, err := g.partTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	src, err := g.copySourceObject(w, r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	off, length := int64(0), src.Size
	if rh := r.Header.Get("X-Amz-Copy-Source-Range"); rh != "" {
		first, last, ok := parseCopyRange(rh)
		if !ok || last >= src.Size {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "Range specified is not valid for source object of size: %d", src.Size))
			return
		}
		off, length = first, last-first+1
	}
	if length > maxPutSize {
		g.writeError(w, r, errEntityTooLarge)
		return
	}
	bv, done, err := g.sourceReader(r, src, off, length, partAlgo(u))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	defer done()
	p, err := g.storePart(r, b, u, num, bv)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	res := s3.CopyPartResult{XMLNS: s3.XMLNS, LastModified: s3.FormatTime(p.Modified), ETag: `"` + p.ETag + `"`}
	for algo, v := range p.Checksums {
		res.Set(algo, v)
	}
	g.writeXML(w, r, res)
}

// parseCopyRange parses x-amz-copy-source-range: "bytes=first-last".
func parseCopyRange(h string) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	a, b, found2 := strings.Cut(spec, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, false
	}
	return first, last, true
}

// allParts reads every stored part of an upload.
func (g *Gateway) allParts(r *http.Request, uploadID string) (map[int]metadata.Part, error) {
	out := map[int]metadata.Part{}
	after := 0
	for {
		page, more, err := g.store.ListParts(r.Context(), uploadID, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, p := range page {
			out[p.Number] = p
		}
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Number
	}
}

// multipartChecksum computes the object checksum from its parts.
func multipartChecksum(u metadata.Upload, parts []metadata.Part) (algo, value string, err error) {
	algo = partAlgo(u)
	if u.ChecksumType == s3.ChecksumFullObject || u.ChecksumAlgo == "" {
		var crc uint64
		for i, p := range parts {
			v, ok := s3.DecodeCRC(algo, p.Checksums[algo])
			if !ok && u.ChecksumAlgo == "" {
				return "", "", nil // a part stored before parts always got CRC64NVME: no object checksum
			}
			if !ok {
				return "", "", s3.Errorf(errInvalidPart, "part %d has no %s checksum", p.Number, algo)
			}
			if i == 0 {
				crc = v
			} else {
				crc = s3.CombineCRC(algo, crc, v, p.Size)
			}
		}
		return algo, s3.EncodeCRC(algo, crc), nil
	}
	h := s3.NewChecksum(algo)
	for _, p := range parts {
		raw, err := base64.StdEncoding.DecodeString(p.Checksums[algo])
		if err != nil || len(raw) == 0 {
			return "", "", s3.Errorf(errInvalidPart, "part %d has no %s checksum", p.Number, algo)
		}
		h.Write(raw)
	}
	return algo, base64.StdEncoding.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts)), nil
}

func (g *Gateway) completeUpload(w http.ResponseWriter, r *http.Request) {
	b, u, err := g.upload(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var req s3.CompleteMultipartUpload
	if err := decodeBody(r, s3.MaxXMLBody, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	if len(req.Parts) == 0 || len(req.Parts) > maxParts {
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "You must specify at least one part"))
		return
	}
	pre, err := writePrecondition(r.Header)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	for attempt := 0; ; attempt++ {
		obj, vid, err := g.completeOnce(r, b, u, req, pre)
		if errors.Is(err, metadata.ErrConflict) && attempt < 3 {
			continue // a part was replaced while we read them: read again
		}
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		setVersionHeader(w, vid)
		res := s3.CompleteMultipartUploadResult{XMLNS: s3.XMLNS, Location: g.objectURL(r, b.Name, u.Key), Bucket: b.Name, Key: u.Key, ETag: `"` + obj.ETag + `"`}
		for algo, v := range obj.Checksums {
			res.Set(algo, v)
		}
		res.ChecksumType = obj.ChecksumType
		g.writeXML(w, r, res)
		return
	}
}

func (g *Gateway) completeOnce(r *http.Request, b metadata.Bucket, u metadata.Upload, req s3.CompleteMultipartUpload, pre metadata.Precondition) (metadata.Object, string, error) {
	stored, err := g.allParts(r, u.UploadID)
	if err != nil {
		return metadata.Object{}, "", err
	}
	parts := make([]metadata.Part, 0, len(req.Parts))
	etags := md5.New()
	var size int64
	for i, cp := range req.Parts {
		if i > 0 && cp.PartNumber <= req.Parts[i-1].PartNumber {
			return metadata.Object{}, "", errInvalidPartOrder
		}
		p, ok := stored[cp.PartNumber]
		if !ok || trimETag(cp.ETag) != p.ETag {
			return metadata.Object{}, "", s3.Errorf(errInvalidPart, "part %d", cp.PartNumber)
		}
		for _, algo := range s3.ChecksumAlgorithms {
			if v := cp.Get(algo); v != "" && v != p.Checksums[algo] {
				return metadata.Object{}, "", s3.Errorf(errInvalidPart, "part %d: %s does not match", cp.PartNumber, algo)
			}
		}
		if i < len(req.Parts)-1 && p.Size < g.cfg.MinPartSize {
			return metadata.Object{}, "", s3.Errorf(errEntityTooSmall, "part %d is %d bytes", cp.PartNumber, p.Size)
		}
		raw, _ := hex.DecodeString(p.ETag)
		etags.Write(raw)
		size += p.Size
		if size > maxObjectSize {
			return metadata.Object{}, "", s3.Errorf(errEntityTooLarge, "the parts add up to more than 5 TiB")
		}
		parts = append(parts, p)
	}
	algo, value, err := multipartChecksum(u, parts)
	if err != nil {
		return metadata.Object{}, "", err
	}
	if want := r.Header.Get(s3.ChecksumHeader(algo)); algo != "" && want != "" && want != value && strings.TrimSuffix(value, "-"+strconv.Itoa(len(parts))) != want {
		return metadata.Object{}, "", s3.Errorf(s3.ErrBadDigest, "The %s you specified did not match the calculated checksum.", algo)
	}
	ctype, sums := u.ChecksumType, map[string]string{algo: value}
	if ctype == "" {
		ctype = s3.ChecksumFullObject
	}
	if algo == "" {
		ctype, sums = "", nil
	}
	obj := metadata.Object{
		Bucket: b.Name, Key: u.Key, VersionID: cluster.NewID(), Size: size,
		ETag:        fmt.Sprintf("%s-%d", hex.EncodeToString(etags.Sum(nil)), len(parts)),
		ContentType: u.ContentType, Headers: u.Headers, UserMeta: u.UserMeta, ACL: u.ACL, Tags: u.Tags, Lock: u.Lock,
		Checksums: sums, ChecksumType: ctype, ModTime: g.now().UTC(),
	}
	events := g.events(r, b, "ObjectCreated:CompleteMultipartUpload", u.Key, obj.Size, obj.ETag)
	vid, err := g.store.CompleteUpload(r.Context(), u, parts, obj, pre, events...)
	return obj, vid, err
}

func (g *Gateway) abortUpload(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.AbortUpload(r.Context(), b.Name, reqOf(r).key, r.URL.Query().Get("uploadId")); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) listParts(w http.ResponseWriter, r *http.Request) {
	b, u, err := g.upload(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	maxP, marker := 1000, 0
	if v := q.Get("max-parts"); v != "" {
		if maxP, err = strconv.Atoi(v); err != nil || maxP < 0 {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "max-parts"))
			return
		}
		maxP = min(maxP, 1000)
	}
	if v := q.Get("part-number-marker"); v != "" {
		if marker, err = strconv.Atoi(v); err != nil || marker < 0 {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "part-number-marker"))
			return
		}
	}
	parts, more, err := g.store.ListParts(r.Context(), u.UploadID, marker, maxP)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	owner := s3.Owner{ID: b.Owner, DisplayName: b.Owner}
	res := s3.ListPartsResult{XMLNS: s3.XMLNS, Bucket: b.Name, Key: u.Key, UploadID: u.UploadID, Initiator: owner, Owner: owner,
		StorageClass: "STANDARD", PartNumberMarker: marker, MaxParts: maxP, IsTruncated: more,
		ChecksumAlgorithm: u.ChecksumAlgo}
	if u.ChecksumAlgo != "" {
		res.ChecksumType = u.ChecksumType
	}
	for _, p := range parts {
		e := s3.PartEntry{PartNumber: p.Number, LastModified: s3.FormatTime(p.Modified), ETag: `"` + p.ETag + `"`, Size: p.Size}
		if u.ChecksumAlgo != "" {
			e.Set(u.ChecksumAlgo, p.Checksums[u.ChecksumAlgo])
		}
		res.Parts = append(res.Parts, e)
		res.NextPartNumberMarker = p.Number
	}
	g.writeXML(w, r, res)
}

func (g *Gateway) listUploads(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	p, err := parseListParams(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if v := q.Get("max-uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "max-uploads"))
			return
		}
		p.maxKeys = min(n, 1000)
	}
	opts := metadata.UploadListOptions{Prefix: p.prefix, Delimiter: p.delimiter, KeyMarker: q.Get("key-marker"), UploadIDMarker: q.Get("upload-id-marker"), MaxUploads: p.maxKeys}
	owner := s3.Owner{ID: b.Owner, DisplayName: b.Owner}
	res := s3.ListMultipartUploadsResult{XMLNS: s3.XMLNS, Bucket: b.Name, KeyMarker: p.enc(opts.KeyMarker), UploadIDMarker: opts.UploadIDMarker,
		Prefix: p.enc(p.prefix), Delimiter: p.enc(p.delimiter), MaxUploads: p.maxKeys, EncodingType: p.encoding}
	page, err := g.store.ListUploads(r.Context(), b.Name, opts)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	for _, cp := range page.CommonPrefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, s3.CommonPrefix{Prefix: p.enc(cp)})
	}
	for _, u := range page.Uploads {
		res.Uploads = append(res.Uploads, s3.UploadEntry{Key: p.enc(u.Key), UploadID: u.UploadID, Initiator: owner, Owner: owner,
			StorageClass: "STANDARD", Initiated: s3.FormatTime(u.Initiated), ChecksumAlgorithm: u.ChecksumAlgo})
	}
	res.IsTruncated = page.IsTruncated
	if res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = p.enc(page.NextKeyMarker), page.NextUploadIDMarker
	}
	g.writeXML(w, r, res)
}
