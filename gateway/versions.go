package gateway

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

// setVersionHeader answers the version id a request read or wrote ("":
// the bucket is unversioned, no header).
func setVersionHeader(w http.ResponseWriter, vid string) {
	if vid != "" {
		w.Header().Set("X-Amz-Version-Id", vid)
	}
}

// versionParam is the request's versionId ("" when absent). An empty
// versionId= is refused, as AWS does.
func versionParam(r *http.Request) (string, error) {
	q := r.URL.Query()
	if !q.Has("versionId") {
		return "", nil
	}
	v := q.Get("versionId")
	if v == "" || len(v) > 1024 {
		return "", s3.Errorf(s3.ErrInvalidArgument, "Invalid version id specified")
	}
	return v, nil
}

// readVersion is the version of key a read names: versionId, or the
// current version. Reading a delete marker by id is 405 MethodNotAllowed,
// a key whose latest version is a delete marker 404 NoSuchKey; both carry
// x-amz-delete-marker.
func (g *Gateway) readVersion(w http.ResponseWriter, r *http.Request, b metadata.Bucket, key string) (metadata.Object, error) {
	vid, err := versionParam(r)
	if err != nil {
		return metadata.Object{}, err
	}
	if vid == "" {
		obj, err := g.store.GetObject(r.Context(), b.Name, key)
		if errors.Is(err, metadata.ErrNoSuchKey) && b.Versioning != "" {
			if dm, derr := g.store.GetObjectVersion(r.Context(), b.Name, key, ""); derr == nil && dm.DeleteMarker {
				w.Header().Set("X-Amz-Delete-Marker", "true")
				w.Header().Set("X-Amz-Version-Id", dm.S3Version())
			}
		}
		return obj, err
	}
	obj, err := g.store.GetObjectVersion(r.Context(), b.Name, key, vid)
	if err == nil && obj.DeleteMarker {
		w.Header().Set("X-Amz-Delete-Marker", "true")
		w.Header().Set("X-Amz-Version-Id", obj.S3Version())
		w.Header().Set("Last-Modified", httpTime(obj.ModTime))
		return obj, errMethodNotAllowed
	}
	return obj, err
}

// versionOf is the x-amz-version-id a read answers: the version's id in a
// bucket that has versioning (or when one was asked for), else none.
func versionOf(b metadata.Bucket, obj metadata.Object, asked bool) string {
	if b.Versioning == "" && !asked {
		return ""
	}
	return obj.S3Version()
}

func (g *Gateway) getBucketVersioning(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	// A bucket on which versioning was never enabled answers the empty
	// configuration, as AWS.
	g.writeXML(w, r, s3.VersioningConfiguration{XMLNS: s3.XMLNS, Status: b.Versioning})
}

func (g *Gateway) putBucketVersioning(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var c s3.VersioningConfiguration
	if err := decodeBody(r, maxSmallXMLBody, &c); err != nil {
		g.writeError(w, r, err)
		return
	}
	switch {
	case c.MfaDelete == "Enabled":
		g.writeError(w, r, s3.Errorf(s3.ErrNotImplemented, "MFA delete"))
		return
	case c.MfaDelete != "" && c.MfaDelete != "Disabled":
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "MfaDelete %q", c.MfaDelete))
		return
	case c.Status != metadata.VersioningEnabled && c.Status != metadata.VersioningSuspended:
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "Status must be Enabled or Suspended"))
		return
	}
	// The lock is checked on the bucket the update writes over (the store
	// refuses the combination too), not on one read before the body.
	err = g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error {
		if b.ObjectLock && c.Status != metadata.VersioningEnabled {
			return metadata.ErrBucketState
		}
		b.Versioning = c.Status
		return nil
	})
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) listObjectVersions(w http.ResponseWriter, r *http.Request) {
	b, p, err := g.listTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	keyMarker, vidMarker := q.Get("key-marker"), q.Get("version-id-marker")
	if vidMarker != "" && keyMarker == "" {
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "A version-id marker cannot be specified without a key marker."))
		return
	}
	var res metadata.VersionListResult
	if p.maxKeys > 0 {
		res, err = g.store.ListObjectVersions(r.Context(), b.Name, metadata.VersionListOptions{
			Prefix: p.prefix, Delimiter: p.delimiter, KeyMarker: keyMarker, VersionIDMarker: vidMarker, MaxKeys: p.maxKeys})
		if err != nil {
			g.writeError(w, r, err)
			return
		}
	}
	owner := &s3.Owner{ID: b.Owner, DisplayName: b.Owner}
	out := s3.ListVersionsResult{XMLNS: s3.XMLNS, Name: b.Name, Prefix: p.enc(p.prefix), KeyMarker: p.enc(keyMarker),
		VersionIDMarker: vidMarker, MaxKeys: p.maxKeys, Delimiter: p.enc(p.delimiter), IsTruncated: res.IsTruncated,
		EncodingType: p.encoding}
	if res.IsTruncated {
		out.NextKeyMarker, out.NextVersionIDMarker = p.enc(res.NextKeyMarker), res.NextVersionIDMarker
	}
	for _, v := range res.Versions {
		e := s3.VersionEntry{XMLName: xml.Name{Local: "Version"}, Key: p.enc(v.Key), VersionID: v.S3Version(), IsLatest: v.IsLatest,
			LastModified: s3.FormatTime(v.ModTime), Owner: owner}
		if v.DeleteMarker {
			e.XMLName.Local = "DeleteMarker"
		} else {
			size := v.Size
			e.ETag, e.Size, e.StorageClass = `"`+v.ETag+`"`, &size, "STANDARD"
			if algo := checksumAlgo(v); algo != "" {
				e.ChecksumAlgorithm, e.ChecksumType = algo, v.ChecksumType
			}
		}
		out.Entries = append(out.Entries, e)
	}
	for _, c := range res.CommonPrefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, s3.CommonPrefix{Prefix: p.enc(c)})
	}
	g.writeXML(w, r, out)
}

// deleteVersion deletes key (a version of it when vid is set) and answers
// what that did: the version removed or the delete marker made.
func (g *Gateway) deleteVersion(r *http.Request, b metadata.Bucket, key, vid string, pre metadata.Precondition) (metadata.Removal, error) {
	event := "ObjectRemoved:Delete"
	if vid == "" && b.Versioning != "" {
		event = "ObjectRemoved:DeleteMarkerCreated"
	}
	events := g.events(r, b, event, key, 0, "")
	if vid == "" {
		return g.store.DeleteObject(r.Context(), b.Name, key, pre, events...)
	}
	rm, err := g.store.DeleteObjectVersion(r.Context(), b.Name, key, vid, bypassGovernance(r), events...)
	if errors.Is(err, metadata.ErrNoSuchVersion) {
		return metadata.Removal{VersionID: vid}, nil // AWS answers 204 for a version that is not there
	}
	return rm, err
}

// setRemovalHeaders answers what a DeleteObject did.
func setRemovalHeaders(w http.ResponseWriter, rm metadata.Removal) {
	setVersionHeader(w, rm.VersionID)
	if rm.DeleteMarker {
		w.Header().Set("X-Amz-Delete-Marker", strconv.FormatBool(true))
	}
}
