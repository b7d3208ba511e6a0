package s3

import (
	"encoding/xml"
	"io"
	"time"
)

// XMLNS is the S3 XML namespace.
const XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"

// TimeFormat is how S3 writes times in XML bodies.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Owner is a bucket or object owner.
type Owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

// BucketEntry is one bucket of ListBuckets.
type BucketEntry struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
}

// ListAllMyBucketsResult is the ListBuckets answer.
type ListAllMyBucketsResult struct {
	XMLName xml.Name      `xml:"ListAllMyBucketsResult"`
	XMLNS   string        `xml:"xmlns,attr"`
	Owner   Owner         `xml:"Owner"`
	Buckets []BucketEntry `xml:"Buckets>Bucket"`
}

// ObjectEntry is one object of a listing.
type ObjectEntry struct {
	Key               string `xml:"Key"`
	LastModified      string `xml:"LastModified"`
	ETag              string `xml:"ETag"`
	Size              int64  `xml:"Size"`
	ChecksumAlgorithm string `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType      string `xml:"ChecksumType,omitempty"`
	StorageClass      string `xml:"StorageClass"`
	Owner             *Owner `xml:"Owner,omitempty"`
}

// CommonPrefix is a rolled-up prefix of a delimited listing.
type CommonPrefix struct {
	Prefix string `xml:"Prefix"`
}

// ListBucketResult is the ListObjects (V1) answer.
type ListBucketResult struct {
	XMLName        xml.Name       `xml:"ListBucketResult"`
	XMLNS          string         `xml:"xmlns,attr"`
	Name           string         `xml:"Name"`
	Prefix         string         `xml:"Prefix"`
	Marker         string         `xml:"Marker"`
	NextMarker     string         `xml:"NextMarker,omitempty"`
	MaxKeys        int            `xml:"MaxKeys"`
	Delimiter      string         `xml:"Delimiter,omitempty"`
	IsTruncated    bool           `xml:"IsTruncated"`
	EncodingType   string         `xml:"EncodingType,omitempty"`
	Contents       []ObjectEntry  `xml:"Contents"`
	CommonPrefixes []CommonPrefix `xml:"CommonPrefixes"`
}

// ListBucketResultV2 is the ListObjectsV2 answer.
type ListBucketResultV2 struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	XMLNS                 string         `xml:"xmlns,attr"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	StartAfter            string         `xml:"StartAfter,omitempty"`
	ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	KeyCount              int            `xml:"KeyCount"`
	MaxKeys               int            `xml:"MaxKeys"`
	Delimiter             string         `xml:"Delimiter,omitempty"`
	IsTruncated           bool           `xml:"IsTruncated"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	Contents              []ObjectEntry  `xml:"Contents"`
	CommonPrefixes        []CommonPrefix `xml:"CommonPrefixes"`
}

// LocationConstraint is the GetBucketLocation answer and CreateBucket body.
type LocationConstraint struct {
	XMLName  xml.Name `xml:"LocationConstraint"`
	XMLNS    string   `xml:"xmlns,attr,omitempty"`
	Location string   `xml:",chardata"`
}

// CreateBucketConfiguration is CreateBucket's optional body.
type CreateBucketConfiguration struct {
	XMLName            xml.Name `xml:"CreateBucketConfiguration"`
	LocationConstraint string   `xml:"LocationConstraint"`
}

// CopyObjectResult is the CopyObject answer.
type CopyObjectResult struct {
	XMLName        xml.Name `xml:"CopyObjectResult"`
	XMLNS          string   `xml:"xmlns,attr"`
	LastModified   string   `xml:"LastModified"`
	ETag           string   `xml:"ETag"`
	ChecksumCRC32  string   `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C string   `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64  string   `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1   string   `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256 string   `xml:"ChecksumSHA256,omitempty"`
}

// DeleteRequest is the DeleteObjects body.
type DeleteRequest struct {
	XMLName xml.Name `xml:"Delete"`
	Quiet   bool     `xml:"Quiet"`
	Objects []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	} `xml:"Object"`
}

// DeletedEntry is one success of DeleteObjects.
type DeletedEntry struct {
	Key string `xml:"Key"`
}

// DeleteErrorEntry is one failure of DeleteObjects.
type DeleteErrorEntry struct {
	Key     string `xml:"Key"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// DeleteResult is the DeleteObjects answer.
type DeleteResult struct {
	XMLName xml.Name           `xml:"DeleteResult"`
	XMLNS   string             `xml:"xmlns,attr"`
	Deleted []DeletedEntry     `xml:"Deleted"`
	Errors  []DeleteErrorEntry `xml:"Error"`
}

// FormatTime writes t as S3 XML does.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// MaxXMLBody bounds request bodies parsed as XML (DeleteObjects of 1000 keys of
// 1024 bytes fits).
const MaxXMLBody = 2 << 20

// DecodeXML parses an XML request body of at most MaxXMLBody bytes into v.
// Errors wrap ErrMalformedXML.
func DecodeXML(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxXMLBody+1))
	if err != nil {
		return err
	}
	if len(b) > MaxXMLBody {
		return Errorf(ErrMalformedXML, "body too large")
	}
	if err := xml.Unmarshal(b, v); err != nil {
		return Errorf(ErrMalformedXML, "%v", err)
	}
	return nil
}
