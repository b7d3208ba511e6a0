package gateway

// Canned ACLs. Sherd has one owner (the root identity) and no ACL grants
// to other accounts, so an ACL is one of AWS's canned names: on a bucket
// private or public-read (anonymous listing never), on an object any of
// them, of which public-read and public-read-write let anonymous clients
// GET and HEAD the object. ACL documents are accepted when they say what a
// canned ACL says (s3cmd's setacl sends those).

import (
	"encoding/xml"
	"net/http"
	"slices"
	"strings"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

const (
	aclPrivate          = "private"
	aclPublicRead       = "public-read"
	aclPublicReadWrite  = "public-read-write"
	aclAuthenticatedRd  = "authenticated-read"
	xsiNamespace        = "http://www.w3.org/2001/XMLSchema-instance"
	groupAllUsers       = "http://acs.amazonaws.com/groups/global/AllUsers"
	groupAuthenticated  = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
	permRead, permWrite = "READ", "WRITE"
)

// objectACLs are the canned ACLs an object may have.
var objectACLs = []string{aclPrivate, aclPublicRead, aclPublicReadWrite, aclAuthenticatedRd,
	"aws-exec-read", "bucket-owner-read", "bucket-owner-full-control"}

// objectACL validates an object's x-amz-acl ("" and private are stored as "").
func objectACL(v string) (string, error) {
	switch {
	case v == "" || v == aclPrivate:
		return "", nil
	case slices.Contains(objectACLs, v):
		return v, nil
	}
	return "", s3.Errorf(s3.ErrInvalidArgument, "unknown canned ACL %q", v)
}

// publicRead says whether an object's ACL lets anyone read it.
func publicRead(acl string) bool { return acl == aclPublicRead || acl == aclPublicReadWrite }

// cannedACL maps a bucket's x-amz-acl to the public-read flag.
func cannedACL(v string) (public bool, err error) {
	switch v {
	case "", aclPrivate:
		return false, nil
	case aclPublicRead:
		return true, nil
	}
	return false, s3.Errorf(s3.ErrNotImplemented, "bucket canned ACL %s (a bucket is private or public-read)", v)
}

// aclGrantee is a grantee of an ACL document.
type aclGrantee struct {
	XMLNS string `xml:"xmlns:xsi,attr,omitempty"`
	Type  string `xml:"xsi:type,attr,omitempty"`
	ID    string `xml:"ID,omitempty"`
	URI   string `xml:"URI,omitempty"`
	Email string `xml:"EmailAddress,omitempty"`
}

type aclGrant struct {
	Grantee    aclGrantee `xml:"Grantee"`
	Permission string     `xml:"Permission"`
}

type accessControlPolicy struct {
	XMLName xml.Name   `xml:"AccessControlPolicy"`
	XMLNS   string     `xml:"xmlns,attr,omitempty"`
	Owner   s3.Owner   `xml:"Owner"`
	Grants  []aclGrant `xml:"AccessControlList>Grant"`
}

// incomingPolicy reads an ACL document; encoding/xml matches the
// xsi:type attribute by its local name.
type incomingPolicy struct {
	Grants []struct {
		Grantee struct {
			Type  string `xml:"type,attr"`
			ID    string `xml:"ID"`
			URI   string `xml:"URI"`
			Email string `xml:"EmailAddress"`
		} `xml:"Grantee"`
		Permission string `xml:"Permission"`
	} `xml:"AccessControlList>Grant"`
}

// aclGrants are the grants a canned ACL gives, the owner's first.
func aclGrants(owner, acl string) []aclGrant {
	gs := []aclGrant{{Grantee: aclGrantee{XMLNS: xsiNamespace, Type: "CanonicalUser", ID: owner}, Permission: "FULL_CONTROL"}}
	group := func(uri, perm string) aclGrant {
		return aclGrant{Grantee: aclGrantee{XMLNS: xsiNamespace, Type: "Group", URI: uri}, Permission: perm}
	}
	switch acl {
	case aclPublicRead:
		gs = append(gs, group(groupAllUsers, permRead))
	case aclPublicReadWrite:
		gs = append(gs, group(groupAllUsers, permRead), group(groupAllUsers, permWrite))
	case aclAuthenticatedRd:
		gs = append(gs, group(groupAuthenticated, permRead))
	}
	return gs
}

// policyACL is the canned ACL an ACL document says, if it says one: the
// owner's FULL_CONTROL plus the group grants of a canned ACL.
func policyACL(body []byte, owner string) (string, error) {
	var p incomingPolicy
	if err := s3.UnmarshalXML(body, &p); err != nil {
		return "", err
	}
	var rest []string
	for _, g := range p.Grants {
		switch {
		case g.Grantee.Type == "CanonicalUser" && g.Grantee.ID == owner && g.Permission == "FULL_CONTROL":
		case g.Grantee.Type == "Group" && (g.Grantee.URI == groupAllUsers || g.Grantee.URI == groupAuthenticated):
			rest = append(rest, g.Grantee.URI+" "+g.Permission)
		default:
			return "", s3.Errorf(s3.ErrNotImplemented, "ACL grants to other accounts (only canned ACLs are supported)")
		}
	}
	switch strings.Join(rest, ",") {
	case "":
		return aclPrivate, nil
	case groupAllUsers + " " + permRead:
		return aclPublicRead, nil
	case groupAllUsers + " " + permRead + "," + groupAllUsers + " " + permWrite, groupAllUsers + " " + permWrite + "," + groupAllUsers + " " + permRead:
		return aclPublicReadWrite, nil
	case groupAuthenticated + " " + permRead:
		return aclAuthenticatedRd, nil
	}
	return "", s3.Errorf(s3.ErrNotImplemented, "ACL grants other than a canned ACL's")
}

// requestACL is the canned ACL a PutBucketAcl or PutObjectAcl asks for:
// the x-amz-acl header, or an ACL document in the body (not both).
func requestACL(r *http.Request, owner string) (string, error) {
	for _, h := range []string{"X-Amz-Grant-Read", "X-Amz-Grant-Write", "X-Amz-Grant-Read-Acp", "X-Amz-Grant-Write-Acp", "X-Amz-Grant-Full-Control"} {
		if r.Header.Get(h) != "" {
			return "", s3.Errorf(s3.ErrNotImplemented, "header %s (only canned ACLs are supported)", h)
		}
	}
	body, err := readBody(r, maxSmallXMLBody)
	if err != nil {
		return "", err
	}
	acl := r.Header.Get("X-Amz-Acl")
	switch {
	case acl != "" && len(strings.TrimSpace(string(body))) > 0:
		return "", s3.Errorf(errUnexpectedContent, "This request does not support content")
	case acl != "":
		return acl, nil
	case len(strings.TrimSpace(string(body))) == 0:
		return "", s3.Errorf(errMissingSecurityHeader, "Your request was missing a required header: x-amz-acl")
	}
	return policyACL(body, owner)
}

// getACL answers a bucket's or an object's ACL.
func (g *Gateway) getACL(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	acl := ""
	if b.PublicRead {
		acl = aclPublicRead
	}
	if k := reqOf(r).key; k != "" {
		obj, err := g.readVersion(w, r, b, k)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		acl = obj.ACL
		setVersionHeader(w, versionOf(b, obj, r.URL.Query().Has("versionId")))
	}
	g.writeXML(w, r, accessControlPolicy{XMLNS: s3.XMLNS, Owner: s3.Owner{ID: b.Owner, DisplayName: b.Owner}, Grants: aclGrants(b.Owner, acl)})
}

// putBucketACL sets the bucket's canned ACL (private or public-read).
func (g *Gateway) putBucketACL(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	acl, err := requestACL(r, b.Owner)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	public, err := cannedACL(acl)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error { b.PublicRead = public; return nil }); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// putObjectACL sets an object's canned ACL, in place (no new version).
func (g *Gateway) putObjectACL(w http.ResponseWriter, r *http.Request) {
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
	acl, err := requestACL(r, b.Owner)
	if err == nil {
		acl, err = objectACL(acl)
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.UpdateObject(r.Context(), b.Name, reqOf(r).key, vid, func(o *metadata.Object) error { o.ACL = acl; return nil }); err != nil {
		g.writeError(w, r, err)
		return
	}
	setVersionHeader(w, vid)
	w.WriteHeader(http.StatusOK)
}

// readableObject loads the bucket and the version a GET or HEAD reads
// (readVersion). An anonymous request reads objects of a public-read
// bucket and objects whose own ACL is public; anything else, an absent
// object included, is AccessDenied to it (nothing about what exists is
// revealed).
func (g *Gateway) readableObject(w http.ResponseWriter, r *http.Request) (metadata.Bucket, metadata.Object, error) {
	q := reqOf(r)
	var obj metadata.Object
	if !q.id.Anonymous {
		b, err := g.bucket(r)
		if err != nil {
			return b, obj, err
		}
		obj, err = g.readVersion(w, r, b, q.key)
		return b, obj, err
	}
	b, err := g.store.GetBucket(r.Context(), q.bucket)
	if err != nil {
		return b, obj, s3.ErrAccessDenied
	}
	if authorized(r, &b) == nil { // a public-read bucket
		obj, err = g.readVersion(w, r, b, q.key)
		return b, obj, err
	}
	if !plainRead(r) || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return b, obj, s3.ErrAccessDenied
	}
	obj, err = g.readVersion(discardWriter{}, r, b, q.key)
	if err != nil || !publicRead(obj.ACL) {
		return b, obj, s3.ErrAccessDenied
	}
	return b, obj, nil
}

// discardWriter is a ResponseWriter whose headers go nowhere: what a
// read of a version says about delete markers is not for anonymous
// clients that may not read it.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
