package gateway

// Object and bucket tags, with AWS's limits: at most 10 tags on an object
// (50 on a bucket), keys of 1 to 128 and values of up to 256 Unicode
// characters, no key twice; x-amz-tagging is URL-query encoded.

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

const (
	maxObjectTags = 10
	maxBucketTags = 50
	maxTagKey     = 128
	maxTagValue   = 256
)

var (
	errInvalidTag = &s3.Error{Code: "InvalidTag", Message: "The tag provided was not a valid tag.", Status: http.StatusBadRequest}
	errBadRequest = &s3.Error{Code: "BadRequest", Message: "Bad Request", Status: http.StatusBadRequest}
)

// checkTags validates tags against AWS's limits (max tags allowed).
func checkTags(tags []s3.Tag, maxTags int) (map[string]string, error) {
	if len(tags) > maxTags {
		if maxTags == maxObjectTags {
			return nil, s3.Errorf(errBadRequest, "Object tags cannot be greater than %d", maxTags)
		}
		return nil, s3.Errorf(errInvalidTag, "Bucket tag count cannot be greater than %d", maxTags)
	}
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		switch {
		case !utf8.ValidString(t.Key) || !utf8.ValidString(t.Value):
			return nil, s3.Errorf(errInvalidTag, "Tags must be UTF-8")
		case t.Key == "":
			return nil, s3.Errorf(errInvalidTag, "The TagKey you have provided is invalid")
		case utf8.RuneCountInString(t.Key) > maxTagKey:
			return nil, s3.Errorf(errInvalidTag, "The TagKey you have provided is too long, max %d", maxTagKey)
		case utf8.RuneCountInString(t.Value) > maxTagValue:
			return nil, s3.Errorf(errInvalidTag, "The TagValue you have provided is too long, max %d", maxTagValue)
		}
		if _, dup := out[t.Key]; dup {
			return nil, s3.Errorf(errInvalidTag, "Cannot provide multiple Tags with the same key")
		}
		out[t.Key] = t.Value
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// parseTaggingHeader reads x-amz-tagging ("k1=v1&k2=v2", URL-encoded).
func parseTaggingHeader(v string) (map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	vals, err := url.ParseQuery(v)
	if err != nil {
		return nil, s3.Errorf(s3.ErrInvalidArgument, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
	}
	var tags []s3.Tag
	for k, vs := range vals {
		if len(vs) > 1 {
			return nil, s3.Errorf(errInvalidTag, "Cannot provide multiple Tags with the same key")
		}
		tags = append(tags, s3.Tag{Key: k, Value: vs[0]})
	}
	return checkTags(tags, maxObjectTags)
}

// parseTaggingXML reads a Tagging document (PutObjectTagging,
// PutBucketTagging, a POST form's tagging field).
func parseTaggingXML(body string, maxTags int) (map[string]string, error) {
	var t s3.Tagging
	if err := s3.UnmarshalXML([]byte(body), &t); err != nil {
		return nil, err
	}
	return checkTags(t.TagSet, maxTags)
}

// tagSet is tags as a Tagging document's set, sorted by key.
func tagSet(tags map[string]string) []s3.Tag {
	out := make([]s3.Tag, 0, len(tags))
	for k, v := range tags {
		out = append(out, s3.Tag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// setTaggingCount answers x-amz-tagging-count for an object with tags.
func setTaggingCount(h http.Header, obj metadata.Object) {
	if len(obj.Tags) > 0 {
		h.Set("X-Amz-Tagging-Count", strconv.Itoa(len(obj.Tags)))
	}
}

func (g *Gateway) getObjectTagging(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	obj, err := g.readVersion(w, r, b, reqOf(r).key)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	setVersionHeader(w, versionOf(b, obj, r.URL.Query().Has("versionId")))
	g.writeXML(w, r, s3.Tagging{XMLNS: s3.XMLNS, TagSet: tagSet(obj.Tags)})
}

// putObjectTagging replaces an object's tags (nil: removes them).
func (g *Gateway) setObjectTagging(w http.ResponseWriter, r *http.Request, tags map[string]string, status int) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	vid, err := versionParam(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	err = g.store.UpdateObject(r.Context(), b.Name, reqOf(r).key, vid, func(o *metadata.Object) error {
		o.Tags = tags
		return nil
	})
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if vid == "" && b.Versioning != "" {
		if obj, err := g.store.GetObject(r.Context(), b.Name, reqOf(r).key); err == nil {
			vid = obj.S3Version()
		}
	}
	setVersionHeader(w, vid)
	w.WriteHeader(status)
}

func (g *Gateway) putObjectTagging(w http.ResponseWriter, r *http.Request) {
	var t s3.Tagging
	if err := decodeBody(r, maxSmallXMLBody, &t); err != nil {
		g.writeError(w, r, err)
		return
	}
	tags, err := checkTags(t.TagSet, maxObjectTags)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	g.setObjectTagging(w, r, tags, http.StatusOK)
}

func (g *Gateway) deleteObjectTagging(w http.ResponseWriter, r *http.Request) {
	g.setObjectTagging(w, r, nil, http.StatusNoContent)
}

func (g *Gateway) getBucketTagging(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if len(b.Tags) == 0 {
		g.writeError(w, r, errNoSuchTagSet)
		return
	}
	g.writeXML(w, r, s3.Tagging{XMLNS: s3.XMLNS, TagSet: tagSet(b.Tags)})
}

func (g *Gateway) setBucketTagging(w http.ResponseWriter, r *http.Request, tags map[string]string, status int) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error { b.Tags = tags; return nil }); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(status)
}

func (g *Gateway) putBucketTagging(w http.ResponseWriter, r *http.Request) {
	var t s3.Tagging
	if err := decodeBody(r, maxSmallXMLBody, &t); err != nil {
		g.writeError(w, r, err)
		return
	}
	tags, err := checkTags(t.TagSet, maxBucketTags)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	g.setBucketTagging(w, r, tags, http.StatusNoContent)
}

func (g *Gateway) deleteBucketTagging(w http.ResponseWriter, r *http.Request) {
	g.setBucketTagging(w, r, nil, http.StatusNoContent)
}
