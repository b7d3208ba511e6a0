package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/sherdstore/sherd/gateway/s3"
)

// objectAttributes are the names x-amz-object-attributes may list.
var objectAttributes = map[string]bool{"ETag": true, "Checksum": true, "ObjectParts": true, "StorageClass": true, "ObjectSize": true}

// getObjectAttributes answers the attributes x-amz-object-attributes
// asks for, of the current version or one by versionId, without its data.
// ObjectParts lists a multipart object's parts (numbers and sizes), paged
// by x-amz-max-parts and x-amz-part-number-marker.
func (g *Gateway) getObjectAttributes(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	want := map[string]bool{}
	for _, v := range r.Header.Values("X-Amz-Object-Attributes") {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				if !objectAttributes[a] {
					g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "Invalid attribute name specified: %s", a))
					return
				}
				want[a] = true
			}
		}
	}
	if len(want) == 0 {
		g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty"))
		return
	}
	maxParts, marker := 1000, 0
	if v := r.Header.Get("X-Amz-Max-Parts"); v != "" {
		if maxParts, err = strconv.Atoi(v); err != nil || maxParts < 0 {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "x-amz-max-parts"))
			return
		}
		maxParts = min(maxParts, 1000)
	}
	if v := r.Header.Get("X-Amz-Part-Number-Marker"); v != "" {
		if marker, err = strconv.Atoi(v); err != nil || marker < 0 {
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "x-amz-part-number-marker"))
			return
		}
	}
	obj, err := g.readVersion(w, r, b, reqOf(r).key)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	out := s3.ObjectAttributes{XMLNS: s3.XMLNS}
	if want["ETag"] {
		out.ETag = obj.ETag
	}
	if want["StorageClass"] {
		out.StorageClass = "STANDARD"
	}
	if want["ObjectSize"] {
		size := obj.Size
		out.ObjectSize = &size
	}
	if algo := checksumAlgo(obj); want["Checksum"] && algo != "" {
		c := &s3.ObjectChecksum{ChecksumType: obj.ChecksumType}
		c.Set(algo, obj.Checksums[algo])
		out.Checksum = c
	}
	if want["ObjectParts"] && obj.PartCount > 0 {
		parts := &s3.ObjectParts{PartsCount: obj.PartCount, PartNumberMarker: marker, MaxParts: maxParts}
		for i := marker; i < len(obj.Segments) && len(parts.Parts) < maxParts; i++ {
			parts.Parts = append(parts.Parts, s3.ObjectPart{PartNumber: i + 1, Size: obj.Segments[i].Size})
		}
		if last := marker + len(parts.Parts); last < len(obj.Segments) {
			parts.IsTruncated, parts.NextPartNumberMarker = true, last
		}
		out.ObjectParts = parts
	}
	w.Header().Set("Last-Modified", httpTime(obj.ModTime))
	setVersionHeader(w, versionOf(b, obj, r.URL.Query().Has("versionId")))
	g.writeXML(w, r, out)
}
