package gateway

// The one place where errors become S3 errors.

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"strings"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/placement"
)

// S3 errors the gateway answers beyond those of package s3.
var (
	errNoSuchBucket          = &s3.Error{Code: "NoSuchBucket", Message: "The specified bucket does not exist", Status: http.StatusNotFound}
	errNoSuchKey             = &s3.Error{Code: "NoSuchKey", Message: "The specified key does not exist.", Status: http.StatusNotFound}
	errNoSuchVersion         = &s3.Error{Code: "NoSuchVersion", Message: "The specified version does not exist.", Status: http.StatusNotFound}
	errNoSuchUpload          = &s3.Error{Code: "NoSuchUpload", Message: "The specified multipart upload does not exist.", Status: http.StatusNotFound}
	errBucketOwned           = &s3.Error{Code: "BucketAlreadyOwnedByYou", Message: "Your previous request to create the named bucket succeeded and you already own it.", Status: http.StatusConflict}
	errBucketNotEmpty        = &s3.Error{Code: "BucketNotEmpty", Message: "The bucket you tried to delete is not empty", Status: http.StatusConflict}
	errPreconditionFailed    = &s3.Error{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold", Status: http.StatusPreconditionFailed}
	errConditionalConflict   = &s3.Error{Code: "ConditionalRequestConflict", Message: "A conflicting operation occurred. If using PutObject you can retry the request.", Status: http.StatusConflict}
	errSlowDown              = &s3.Error{Code: "SlowDown", Message: "Please reduce your request rate.", Status: http.StatusServiceUnavailable}
	errServiceUnavailable    = &s3.Error{Code: "ServiceUnavailable", Message: "Not enough storage nodes are available. Please retry.", Status: http.StatusServiceUnavailable}
	errMetadataUnavailable   = &s3.Error{Code: "ServiceUnavailable", Message: "The metadata store is not available (no leader). Please retry.", Status: http.StatusServiceUnavailable}
	errCommitUnknown         = &s3.Error{Code: "ServiceUnavailable", Message: "The metadata store did not confirm the commit; it may have applied. Please retry.", Status: http.StatusServiceUnavailable}
	errInvalidBucketName     = &s3.Error{Code: "InvalidBucketName", Message: "The specified bucket is not valid.", Status: http.StatusBadRequest}
	errKeyTooLong            = &s3.Error{Code: "KeyTooLongError", Message: "Your key is too long", Status: http.StatusBadRequest}
	errMetadataTooLarge      = &s3.Error{Code: "MetadataTooLarge", Message: "Your metadata headers exceed the maximum allowed metadata size.", Status: http.StatusBadRequest}
	errHeadersTooLarge       = &s3.Error{Code: "RequestHeaderSectionTooLarge", Message: "Your request header section exceeds the maximum allowed size.", Status: http.StatusBadRequest}
	errEntityTooLarge        = &s3.Error{Code: "EntityTooLarge", Message: "Your proposed upload exceeds the maximum allowed object size.", Status: http.StatusBadRequest}
	errMissingContentLength  = &s3.Error{Code: "MissingContentLength", Message: "You must provide the Content-Length HTTP header.", Status: http.StatusLengthRequired}
	errInvalidRequest        = &s3.Error{Code: "InvalidRequest", Message: "Invalid Request", Status: http.StatusBadRequest}
	errInvalidLocation       = &s3.Error{Code: "InvalidLocationConstraint", Message: "The specified location-constraint is not valid", Status: http.StatusBadRequest}
	errMethodNotAllowed      = &s3.Error{Code: "MethodNotAllowed", Message: "The specified method is not allowed against this resource.", Status: http.StatusMethodNotAllowed}
	errInvalidArgument       = s3.ErrInvalidArgument
	errUnexpectedContent     = &s3.Error{Code: "UnexpectedContent", Message: "This request does not support content", Status: http.StatusBadRequest}
	errMissingSecurityHeader = &s3.Error{Code: "MissingSecurityHeader", Message: "Your request was missing a required header", Status: http.StatusBadRequest}
	errNoSuchLifecycle       = &s3.Error{Code: "NoSuchLifecycleConfiguration", Message: "The lifecycle configuration does not exist", Status: http.StatusNotFound}
	errNoSuchPolicy          = &s3.Error{Code: "NoSuchBucketPolicy", Message: "The bucket policy does not exist", Status: http.StatusNotFound}
	errNoSuchTagSet          = &s3.Error{Code: "NoSuchTagSet", Message: "The TagSet does not exist", Status: http.StatusNotFound}
	errNoSuchCORS            = &s3.Error{Code: "NoSuchCORSConfiguration", Message: "The CORS configuration does not exist", Status: http.StatusNotFound}
	errNoSuchWebsite         = &s3.Error{Code: "NoSuchWebsiteConfiguration", Message: "The specified bucket does not have a website configuration", Status: http.StatusNotFound}
	errNoEncryptionConfig    = &s3.Error{Code: "ServerSideEncryptionConfigurationNotFoundError", Message: "The server side encryption configuration was not found", Status: http.StatusNotFound}
	errObjectLockNotFound    = &s3.Error{Code: "ObjectLockConfigurationNotFoundError", Message: "Object Lock configuration does not exist for this bucket", Status: http.StatusNotFound}
	errNoSuchReplication     = &s3.Error{Code: "ReplicationConfigurationNotFoundError", Message: "The replication configuration was not found", Status: http.StatusNotFound}
	errOwnershipNotFound     = &s3.Error{Code: "OwnershipControlsNotFoundError", Message: "The bucket ownership controls were not found", Status: http.StatusNotFound}
	errPublicAccessBlockNone = &s3.Error{Code: "NoSuchPublicAccessBlockConfiguration", Message: "The public access block configuration was not found", Status: http.StatusNotFound}
)

// toS3 maps any error to the S3 error the client gets.
func toS3(err error) *s3.Error {
	var se *s3.Error
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, metadata.ErrNoSuchBucket):
		return errNoSuchBucket
	case errors.Is(err, metadata.ErrNoSuchKey):
		return errNoSuchKey
	case errors.Is(err, metadata.ErrLocked):
		return errLocked
	case errors.Is(err, metadata.ErrBucketState):
		return errInvalidBucketState
	case errors.Is(err, metadata.ErrNoSuchVersion):
		return errNoSuchVersion
	case errors.Is(err, metadata.ErrNoSuchUpload):
		return errNoSuchUpload
	case errors.Is(err, metadata.ErrBucketExists):
		return errBucketOwned
	case errors.Is(err, metadata.ErrBucketNotEmpty):
		return errBucketNotEmpty
	case errors.Is(err, metadata.ErrPreconditionFailed):
		return errPreconditionFailed
	case errors.Is(err, metadata.ErrConflict):
		return errConditionalConflict
	case errors.Is(err, metadata.ErrUnknownOutcome):
		return errCommitUnknown
	case errors.Is(err, metadata.ErrInvalid):
		return errInvalidArgument
	case errors.Is(err, metadata.ErrUnavailable):
		return errMetadataUnavailable
	case errors.Is(err, cluster.ErrUnavailable), errors.Is(err, erasure.ErrTooFewShards), errors.Is(err, placement.ErrNotEnoughNodes):
		return errServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return errServiceUnavailable
	}
	return s3.ErrInternal
}

// clientMessage is the message of the answer to err, mapped to se: a
// refusal (4xx) says why, with the detail its s3.Errorf gave; a server
// error says only what its S3 error says, never the text of the error
// behind it (etcd and node addresses, paths), which goes to the log.
func clientMessage(se *s3.Error, err error) string {
	var d *s3.DetailedError
	if se.Status >= 500 || !errors.As(err, &d) || d.Err != se || d.Detail == "" {
		return se.Message
	}
	return strings.TrimSuffix(se.Message, ".") + ": " + d.Detail
}

// writeError answers err as an S3 error (no body for HEAD).
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	se := toS3(err)
	if se.Status >= 500 && !errors.Is(err, context.Canceled) {
		g.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", se.Status, "err", err)
	} else {
		g.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", se.Status, "err", err)
	}
	if se.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(se.Status)
		return
	}
	resp := s3.ErrorResponse{Code: se.Code, Message: clientMessage(se, err), Resource: r.URL.Path, RequestID: w.Header().Get("X-Amz-Request-Id")}
	if uh := (*s3.UnsignedHeadersError)(nil); errors.As(err, &uh) {
		resp.HeadersNotSigned = uh.Headers
	}
	body, _ := xml.Marshal(resp)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Del("Content-Length")
	w.Header().Del("ETag")
	w.Header().Del("Last-Modified")
	w.WriteHeader(se.Status)
	w.Write([]byte(xml.Header))
	w.Write(body)
}
