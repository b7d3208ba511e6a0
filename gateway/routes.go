package gateway

import (
	"net/http"
	"slices"

	"github.com/gorilla/mux"

	"github.com/sherdstore/sherd/gateway/s3"
)

// subresources are the S3 query parameters that select an operation other
// than the plain one on a service, bucket or object. Those without a route
// below answer NotImplemented (listed in docs/compatibility.md).
var subresources = s3.SubResources

// level matches requests on the service (0), a bucket (1) or an object (2).
func level(n int) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool {
		q := reqOf(r)
		switch {
		case q.bucket == "":
			return n == 0
		case q.key == "":
			return n == 1
		}
		return n == 2
	}
}

func hasQuery(k string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool { return r.URL.Query().Has(k) }
}

func hasHeader(k string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool { return r.Header.Get(k) != "" }
}

// onlyQuery matches a request whose only subresource is k.
func onlyQuery(k string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool {
		q := r.URL.Query()
		return q.Has(k) && !slices.ContainsFunc(subresources, func(s string) bool { return s != k && q.Has(s) })
	}
}

// onlyQueriesOf matches a request with no subresources but some of ks.
func onlyQueriesOf(ks ...string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool {
		q := r.URL.Query()
		return !slices.ContainsFunc(subresources, func(s string) bool { return !slices.Contains(ks, s) && q.Has(s) })
	}
}

// anySubresource matches a request naming a subresource.
func anySubresource(r *http.Request, _ *mux.RouteMatch) bool {
	q := r.URL.Query()
	return slices.ContainsFunc(subresources, q.Has)
}

func (g *Gateway) routes() *mux.Router {
	root := mux.NewRouter().SkipClean(true)
	root.Path(presignPath).Methods(http.MethodGet, http.MethodPost).HandlerFunc(g.presignEndpoint)
	svc := root.MatcherFunc(level(0)).Subrouter()
	bkt := root.MatcherFunc(level(1)).Subrouter()
	obj := root.MatcherFunc(level(2)).Subrouter()

	svc.Methods(http.MethodGet).HandlerFunc(g.listBuckets)

	// Bucket configuration reads that have nothing stored answer as AWS
	// does for a bucket without that configuration; writes of them are
	// NotImplemented.
	for q, e := range map[string]*s3.Error{
		"policy":  errNoSuchPolicy,
		"website": errNoSuchWebsite, "encryption": errNoEncryptionConfig,
		"replication":       errNoSuchReplication,
		"ownershipControls": errOwnershipNotFound, "publicAccessBlock": errPublicAccessBlockNone,
	} {
		bkt.Methods(http.MethodGet).MatcherFunc(hasQuery(q)).HandlerFunc(g.bucketConfigAbsent(e))
	}
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("lifecycle")).HandlerFunc(g.getBucketLifecycle)
	bkt.Methods(http.MethodPut).MatcherFunc(hasQuery("lifecycle")).HandlerFunc(g.putBucketLifecycle)
	bkt.Methods(http.MethodDelete).MatcherFunc(hasQuery("lifecycle")).HandlerFunc(g.deleteBucketLifecycle)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("object-lock")).HandlerFunc(g.getObjectLockConfig)
	bkt.Methods(http.MethodPut).MatcherFunc(hasQuery("object-lock")).HandlerFunc(g.putObjectLockConfig)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("tagging")).HandlerFunc(g.getBucketTagging)
	bkt.Methods(http.MethodPut).MatcherFunc(hasQuery("tagging")).HandlerFunc(g.putBucketTagging)
	bkt.Methods(http.MethodDelete).MatcherFunc(hasQuery("tagging")).HandlerFunc(g.deleteBucketTagging)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("cors")).HandlerFunc(g.getBucketCors)
	bkt.Methods(http.MethodPut).MatcherFunc(hasQuery("cors")).HandlerFunc(g.putBucketCors)
	bkt.Methods(http.MethodDelete).MatcherFunc(hasQuery("cors")).HandlerFunc(g.deleteBucketCors)
	bkt.Methods(http.MethodPut).MatcherFunc(hasQuery("acl")).HandlerFunc(g.putBucketACL)
	bkt.Methods(http.MethodOptions).HandlerFunc(g.preflight)
	obj.Methods(http.MethodOptions).HandlerFunc(g.preflight)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("location")).HandlerFunc(g.getBucketLocation)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("versioning")).HandlerFunc(g.getBucketVersioning)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("acl")).HandlerFunc(g.getACL)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("uploads")).HandlerFunc(g.listUploads)
	bkt.Methods(http.MethodGet).MatcherFunc(hasQuery("versions")).HandlerFunc(g.listObjectVersions)
	bkt.Methods(http.MethodGet).MatcherFunc(anySubresource).HandlerFunc(g.notImplemented)
	bkt.Methods(http.MethodGet).MatcherFunc(func(r *http.Request, _ *mux.RouteMatch) bool {
		return r.URL.Query().Get("list-type") == "2"
	}).HandlerFunc(g.listObjectsV2)
	bkt.Methods(http.MethodGet).HandlerFunc(g.listObjectsV1)
	bkt.Methods(http.MethodHead).HandlerFunc(g.headBucket)
	bkt.Methods(http.MethodPut).MatcherFunc(hasQuery("versioning")).HandlerFunc(g.putBucketVersioning)
	bkt.Methods(http.MethodPut).MatcherFunc(anySubresource).HandlerFunc(g.notImplemented)
	bkt.Methods(http.MethodPut).HandlerFunc(g.createBucket)
	bkt.Methods(http.MethodDelete).MatcherFunc(anySubresource).HandlerFunc(g.notImplemented)
	bkt.Methods(http.MethodDelete).HandlerFunc(g.deleteBucket)
	bkt.Methods(http.MethodPost).MatcherFunc(hasQuery("delete")).HandlerFunc(g.deleteObjects)
	bkt.Methods(http.MethodPost).MatcherFunc(func(r *http.Request, _ *mux.RouteMatch) bool { return isForm(r) }).HandlerFunc(g.postObject)
	bkt.Methods(http.MethodPost).HandlerFunc(g.notImplemented)

	obj.Methods(http.MethodGet).MatcherFunc(hasQuery("acl")).HandlerFunc(g.getACL)
	obj.Methods(http.MethodGet).MatcherFunc(hasQuery("retention")).MatcherFunc(onlyQueriesOf("retention", "versionId")).HandlerFunc(g.getObjectRetention)
	obj.Methods(http.MethodPut).MatcherFunc(hasQuery("retention")).MatcherFunc(onlyQueriesOf("retention", "versionId")).HandlerFunc(g.putObjectRetention)
	obj.Methods(http.MethodGet).MatcherFunc(hasQuery("legal-hold")).MatcherFunc(onlyQueriesOf("legal-hold", "versionId")).HandlerFunc(g.getObjectLegalHold)
	obj.Methods(http.MethodPut).MatcherFunc(hasQuery("legal-hold")).MatcherFunc(onlyQueriesOf("legal-hold", "versionId")).HandlerFunc(g.putObjectLegalHold)
	obj.Methods(http.MethodGet).MatcherFunc(hasQuery("attributes")).MatcherFunc(onlyQueriesOf("attributes", "versionId")).HandlerFunc(g.getObjectAttributes)
	obj.Methods(http.MethodGet).MatcherFunc(hasQuery("tagging")).MatcherFunc(onlyQueriesOf("tagging", "versionId")).HandlerFunc(g.getObjectTagging)
	obj.Methods(http.MethodPut).MatcherFunc(hasQuery("tagging")).MatcherFunc(onlyQueriesOf("tagging", "versionId")).HandlerFunc(g.putObjectTagging)
	obj.Methods(http.MethodDelete).MatcherFunc(hasQuery("tagging")).MatcherFunc(onlyQueriesOf("tagging", "versionId")).HandlerFunc(g.deleteObjectTagging)
	obj.Methods(http.MethodGet).MatcherFunc(hasQuery("uploadId")).HandlerFunc(g.listParts)
	obj.Methods(http.MethodGet, http.MethodHead).MatcherFunc(onlyQueriesOf("partNumber", "versionId")).HandlerFunc(g.getObject)
	obj.Methods(http.MethodGet, http.MethodHead).MatcherFunc(anySubresource).HandlerFunc(g.notImplemented)
	obj.Methods(http.MethodGet).HandlerFunc(g.getObject)
	obj.Methods(http.MethodHead).HandlerFunc(g.getObject)
	obj.Methods(http.MethodPut).MatcherFunc(hasQuery("uploadId")).MatcherFunc(hasQuery("partNumber")).MatcherFunc(hasHeader("X-Amz-Copy-Source")).HandlerFunc(g.uploadPartCopy)
	obj.Methods(http.MethodPut).MatcherFunc(hasQuery("uploadId")).MatcherFunc(hasQuery("partNumber")).HandlerFunc(g.uploadPart)
	obj.Methods(http.MethodPut).MatcherFunc(hasQuery("acl")).MatcherFunc(onlyQueriesOf("acl", "versionId")).HandlerFunc(g.putObjectACL)
	obj.Methods(http.MethodPut).MatcherFunc(anySubresource).HandlerFunc(g.notImplemented)
	obj.Methods(http.MethodPut).MatcherFunc(hasHeader("X-Amz-Copy-Source")).HandlerFunc(g.copyObject)
	obj.Methods(http.MethodPut).HandlerFunc(g.putObject)
	obj.Methods(http.MethodDelete).MatcherFunc(hasQuery("uploadId")).HandlerFunc(g.abortUpload)
	obj.Methods(http.MethodDelete).MatcherFunc(onlyQuery("versionId")).HandlerFunc(g.deleteObject)
	obj.Methods(http.MethodDelete).MatcherFunc(anySubresource).HandlerFunc(g.notImplemented)
	obj.Methods(http.MethodDelete).HandlerFunc(g.deleteObject)
	obj.Methods(http.MethodPost).MatcherFunc(hasQuery("uploads")).HandlerFunc(g.createUpload)
	obj.Methods(http.MethodPost).MatcherFunc(hasQuery("uploadId")).HandlerFunc(g.completeUpload)
	obj.Methods(http.MethodPost).HandlerFunc(g.notImplemented)

	root.NotFoundHandler = http.HandlerFunc(g.notImplemented)
	root.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.writeError(w, r, errMethodNotAllowed)
	})
	return root
}

func (g *Gateway) notImplemented(w http.ResponseWriter, r *http.Request) {
	g.writeError(w, r, s3.ErrNotImplemented)
}
