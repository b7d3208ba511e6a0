package gateway

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

// listParams are the options ListObjects V1 and V2 share.
type listParams struct {
	prefix, delimiter, encoding string
	maxKeys                     int
}

func parseListParams(r *http.Request) (listParams, error) {
	q := r.URL.Query()
	p := listParams{prefix: q.Get("prefix"), delimiter: q.Get("delimiter"), encoding: q.Get("encoding-type"), maxKeys: 1000}
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, s3.Errorf(s3.ErrInvalidArgument, "max-keys must be a non-negative integer")
		}
		p.maxKeys = min(n, 1000)
	}
	if p.encoding != "" && p.encoding != "url" {
		return p, s3.Errorf(s3.ErrInvalidArgument, "Invalid Encoding Method specified in Request")
	}
	return p, nil
}

// enc encodes a key name for the response when encoding-type=url was
// asked for. AWS encodes Key, CommonPrefixes' Prefix, Delimiter, and in V1
// Marker and NextMarker, in V2 Prefix and StartAfter (not V1's Prefix: the
// fields botocore decodes for each).
func (p listParams) enc(s string) string {
	if p.encoding == "url" {
		return s3.URLEncode(s)
	}
	return s
}

// list runs one page; maxKeys 0 answers an empty, untruncated page.
func (g *Gateway) list(r *http.Request, p listParams, after string) (metadata.ListResult, error) {
	if p.maxKeys == 0 {
		return metadata.ListResult{}, nil
	}
	return g.store.ListObjects(r.Context(), reqOf(r).bucket, metadata.ListOptions{
		Prefix: p.prefix, Delimiter: p.delimiter, StartAfter: after, MaxKeys: p.maxKeys})
}

func (p listParams) entries(res metadata.ListResult, owner *s3.Owner) ([]s3.ObjectEntry, []s3.CommonPrefix) {
	var objs []s3.ObjectEntry
	for _, o := range res.Objects {
		e := s3.ObjectEntry{Key: p.enc(o.Key), LastModified: s3.FormatTime(o.ModTime), ETag: `"` + o.ETag + `"`,
			Size: o.Size, StorageClass: "STANDARD", Owner: owner}
		if algo := checksumAlgo(o); algo != "" {
			e.ChecksumAlgorithm, e.ChecksumType = algo, o.ChecksumType
		}
		objs = append(objs, e)
	}
	var cps []s3.CommonPrefix
	for _, c := range res.CommonPrefixes {
		cps = append(cps, s3.CommonPrefix{Prefix: p.enc(c)})
	}
	return objs, cps
}

// listTarget is the bucket and the common options of a listing.
func (g *Gateway) listTarget(r *http.Request) (metadata.Bucket, listParams, error) {
	b, err := g.bucket(r)
	if err != nil {
		return b, listParams{}, err
	}
	p, err := parseListParams(r)
	return b, p, err
}

func (g *Gateway) listObjectsV1(w http.ResponseWriter, r *http.Request) {
	b, p, err := g.listTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	marker := r.URL.Query().Get("marker")
	res, err := g.list(r, p, marker)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	owner := &s3.Owner{ID: b.Owner, DisplayName: b.Owner}
	out := s3.ListBucketResult{XMLNS: s3.XMLNS, Name: b.Name, Prefix: p.prefix, Marker: p.enc(marker),
		MaxKeys: p.maxKeys, Delimiter: p.enc(p.delimiter), IsTruncated: res.IsTruncated, EncodingType: p.encoding}
	if res.IsTruncated {
		out.NextMarker = p.enc(res.NextMarker)
	}
	out.Contents, out.CommonPrefixes = p.entries(res, owner)
	g.writeXML(w, r, out)
}

func (g *Gateway) listObjectsV2(w http.ResponseWriter, r *http.Request) {
	b, p, err := g.listTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	token, startAfter := q.Get("continuation-token"), q.Get("start-after")
	after := startAfter
	if q.Has("continuation-token") {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || token == "" {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "The continuation token provided is incorrect"))
			return
		}
		after = string(raw)
	}
	res, err := g.list(r, p, after)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var owner *s3.Owner
	if q.Get("fetch-owner") == "true" {
		owner = &s3.Owner{ID: b.Owner, DisplayName: b.Owner}
	}
	out := s3.ListBucketResultV2{XMLNS: s3.XMLNS, Name: b.Name, Prefix: p.enc(p.prefix), StartAfter: p.enc(startAfter),
		ContinuationToken: token, MaxKeys: p.maxKeys, Delimiter: p.enc(p.delimiter), IsTruncated: res.IsTruncated,
		EncodingType: p.encoding}
	if res.IsTruncated {
		out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(res.NextMarker))
	}
	out.Contents, out.CommonPrefixes = p.entries(res, owner)
	out.KeyCount = len(out.Contents) + len(out.CommonPrefixes)
	g.writeXML(w, r, out)
}
