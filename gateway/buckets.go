package gateway

import (
	"encoding/xml"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

// writeXML answers v as an XML body with status 200.
func (g *Gateway) writeXML(w http.ResponseWriter, r *http.Request, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(xml.Header))
	w.Write(body)
}

// authorized says whether the request may act: every signed request may
// (one root identity); an anonymous one only reads the current version of
// objects of a public-read bucket. Public read of a bucket grants
// s3:GetObject, not s3:GetObjectVersion (as AWS separates them): naming a
// version, null included, is refused.
func authorized(r *http.Request, b *metadata.Bucket) error {
	q := reqOf(r)
	if !q.id.Anonymous {
		return nil
	}
	if b != nil && b.PublicRead && q.key != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && plainRead(r) && !r.URL.Query().Has("versionId") {
		return nil
	}
	return s3.ErrAccessDenied
}

// plainRead says whether a GET or HEAD reads the object itself (a part of
// it, or a version), not a subresource: public read grants READ on
// objects, not READ_ACP (the ACL names the owner), tagging or attributes.
func plainRead(r *http.Request) bool {
	q := r.URL.Query()
	for _, sub := range subresources {
		if sub == "partNumber" || sub == "versionId" {
			continue
		}
		if q.Has(sub) {
			return false
		}
	}
	return true
}

// bucket loads the request's bucket and checks access to it.
func (g *Gateway) bucket(r *http.Request) (metadata.Bucket, error) {
	q := reqOf(r)
	b, err := g.store.GetBucket(r.Context(), q.bucket)
	if err != nil {
		if authorized(r, nil) != nil {
			return b, s3.ErrAccessDenied // do not reveal which buckets exist
		}
		return b, err
	}
	return b, authorized(r, &b)
}

func (g *Gateway) listBuckets(w http.ResponseWriter, r *http.Request) {
	if err := authorized(r, nil); err != nil {
		g.writeError(w, r, err)
		return
	}
	bs, err := g.store.ListBuckets(r.Context())
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	ak := reqOf(r).id.AccessKey
	res := s3.ListAllMyBucketsResult{XMLNS: s3.XMLNS, Owner: s3.Owner{ID: ak, DisplayName: ak}}
	for _, b := range bs {
		res.Buckets = append(res.Buckets, s3.BucketEntry{Name: b.Name, CreationDate: s3.FormatTime(b.Created)})
	}
	g.writeXML(w, r, res)
}

// validBucketName applies S3's rules for general purpose buckets.
func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if !alnum(name[0]) || !alnum(name[len(name)-1]) || strings.Contains(name, "..") ||
		strings.Contains(name, ".-") || strings.Contains(name, "-.") {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return false
		}
	}
	return true
}

func (g *Gateway) createBucket(w http.ResponseWriter, r *http.Request) {
	q := reqOf(r)
	if err := authorized(r, nil); err != nil {
		g.writeError(w, r, err)
		return
	}
	if !validBucketName(q.bucket) {
		g.writeError(w, r, errInvalidBucketName)
		return
	}
	public, err := cannedACL(r.Header.Get("X-Amz-Acl"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	body, err := readBody(r, maxSmallXMLBody)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var location string // "": the gateway's region
	if len(strings.TrimSpace(string(body))) > 0 {
		var cfg s3.CreateBucketConfiguration
		if err := s3.UnmarshalXML(body, &cfg); err != nil {
			g.writeError(w, r, err)
			return
		}
		if loc := cfg.LocationConstraint; loc != "" && loc != g.cfg.Region && len(g.cfg.Locations) > 0 && !slices.Contains(g.cfg.Locations, loc) {
			g.writeError(w, r, errInvalidLocation)
			return
		}
		location = cfg.LocationConstraint
	}
	p := g.cfg.Profile
	b := metadata.Bucket{Name: q.bucket, Created: g.now().UTC(), Owner: q.id.AccessKey, PublicRead: public,
		Profile: metadata.ECProfile{K: p.K, M: p.M, BlockSize: p.BlockSize}, Location: location}
	if strings.EqualFold(r.Header.Get("X-Amz-Bucket-Object-Lock-Enabled"), "true") {
		b.ObjectLock, b.Versioning = true, metadata.VersioningEnabled // object lock needs versions
	}
	if err := g.store.CreateBucket(r.Context(), b); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/"+q.bucket)
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) headBucket(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("X-Amz-Bucket-Region", g.bucketRegion(b))
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) deleteBucket(w http.ResponseWriter, r *http.Request) {
	if _, err := g.bucket(r); err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.DeleteBucket(r.Context(), reqOf(r).bucket); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bucketRegion is the region a bucket reports: its LocationConstraint,
// or the gateway's region.
func (g *Gateway) bucketRegion(b metadata.Bucket) string {
	if b.Location != "" {
		return b.Location
	}
	return g.cfg.Region
}

func (g *Gateway) getBucketLocation(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	loc := g.bucketRegion(b)
	if loc == "us-east-1" {
		loc = "" // as AWS answers for us-east-1
	}
	g.writeXML(w, r, s3.LocationConstraint{XMLNS: s3.XMLNS, Location: loc})
}

func (g *Gateway) bucketConfigAbsent(e *s3.Error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := g.bucket(r); err != nil {
			g.writeError(w, r, err)
			return
		}
		g.writeError(w, r, e)
	}
}
