// Package s3 is the S3 wire format: SigV4 verification (header, presigned, aws-chunked with trailers), S3 errors and XML.
package s3

import (
	"encoding/xml"
	"fmt"
	"net/http"
)

// Error is an S3 error answer: code, message and HTTP status. Errors of
// this package wrap one of the values below, so errors.Is and errors.As
// find them.
type Error struct {
	Code    string
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// S3 errors this package returns. The gateway maps its own sentinels to
// these (and more) in one place.
var (
	ErrAccessDenied          = &Error{"AccessDenied", "Access Denied.", http.StatusForbidden}
	ErrExpiredPresign        = &Error{"AccessDenied", "Request has expired.", http.StatusForbidden}
	ErrHeadersNotSigned      = &Error{"AccessDenied", "There were headers present in the request which were not signed", http.StatusForbidden}
	ErrSignatureDoesNotMatch = &Error{"SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.", http.StatusForbidden}
	ErrInvalidAccessKeyID    = &Error{"InvalidAccessKeyId", "The AWS access key Id you provided does not exist in our records.", http.StatusForbidden}
	ErrRequestTimeTooSkewed  = &Error{"RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.", http.StatusForbidden}
	ErrAuthHeaderMalformed   = &Error{"AuthorizationHeaderMalformed", "The authorization header is malformed.", http.StatusBadRequest}
	ErrAuthQueryMalformed    = &Error{"AuthorizationQueryParametersError", "The authorization query parameters are malformed.", http.StatusBadRequest}
	ErrMissingContentSHA256  = &Error{"InvalidRequest", "Missing required header for this request: x-amz-content-sha256.", http.StatusBadRequest}
	ErrContentSHA256Mismatch = &Error{"XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.", http.StatusBadRequest}
	ErrInvalidChunk          = &Error{"IncompleteBody", "The aws-chunked body is malformed or incomplete.", http.StatusBadRequest}
	ErrUnsupportedAlgorithm  = &Error{"InvalidRequest", "The authorization mechanism you have provided is not supported.", http.StatusBadRequest}
	ErrPresignExpiryTooLong  = &Error{"AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds) that is 604800.", http.StatusBadRequest}
	ErrInvalidArgument       = &Error{"InvalidArgument", "Invalid argument.", http.StatusBadRequest}
	ErrMalformedXML          = &Error{"MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.", http.StatusBadRequest}
	ErrNotImplemented        = &Error{"NotImplemented", "A header or query you provided implies functionality that is not implemented.", http.StatusNotImplemented}
	ErrInternal              = &Error{"InternalError", "We encountered an internal error. Please try again.", http.StatusInternalServerError}
)

// Errorf returns an error that wraps e with more detail; errors.Is(err, e) holds.
// The detail is for the client (the gateway adds it to the answer's
// message of a refusal): it must hold nothing internal.
func Errorf(e *Error, format string, args ...any) error {
	return &DetailedError{Err: e, Detail: fmt.Sprintf(format, args...)}
}

// Wrapf is Errorf with the error that caused it, which goes to logs only
// (errors.Is finds it too).
func Wrapf(e *Error, cause error, format string, args ...any) error {
	return &DetailedError{Err: e, Detail: fmt.Sprintf(format, args...), Cause: cause}
}

// DetailedError is an S3 error with the detail of this occurrence.
type DetailedError struct {
	Err    *Error
	Detail string // for the client
	Cause  error  // for logs; nil if none
}

func (d *DetailedError) Error() string {
	s := d.Detail + ": " + d.Err.Error()
	if d.Cause != nil {
		s += ": " + d.Cause.Error()
	}
	return s
}

func (d *DetailedError) Unwrap() []error {
	if d.Cause != nil {
		return []error{d.Err, d.Cause}
	}
	return []error{d.Err}
}

// ErrorResponse is the XML body of an S3 error.
type ErrorResponse struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId,omitempty"`
	// HeadersNotSigned lists the unsigned x-amz-* headers of a refused request.
	HeadersNotSigned string `xml:"HeadersNotSigned,omitempty"`
}
