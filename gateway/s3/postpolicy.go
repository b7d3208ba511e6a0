package s3

// Browser-based uploads: POST with a signed policy document.
//
// Invariants: the policy is trusted only after its signature (SigV4:
// hex HMAC-SHA256 with the scope's signing key; SigV2: base64 HMAC-SHA1)
// matches, it has not expired, every condition holds, and every form field
// the client sent (but the signature, the policy, the file and x-ignore-*)
// is covered by a condition, so a form cannot add what the policy did not
// allow.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Errors of POST policy uploads.
var (
	ErrPolicyDenied    = &Error{"AccessDenied", "Invalid according to Policy", http.StatusForbidden}
	ErrEntityTooSmall  = &Error{"EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size", http.StatusBadRequest}
	ErrEntityTooLarge  = &Error{"EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", http.StatusBadRequest}
	ErrMalformedPolicy = &Error{"MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data or the policy is malformed.", http.StatusBadRequest}
)

// PostPolicy is a verified policy document.
type PostPolicy struct {
	Expiration time.Time
	conditions []postCondition
	// MinSize and MaxSize bound the file (content-length-range); MaxSize
	// is -1 when the policy sets no bound.
	MinSize, MaxSize int64
}

type postCondition struct {
	op, field, value string // op: eq | starts-with; field lowercase, without '$'
}

// ParsePostPolicy decodes a base64 policy document.
func ParsePostPolicy(b64 string) (*PostPolicy, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, Errorf(ErrMalformedPolicy, "policy is not base64")
	}
	var doc struct {
		Expiration string            `json:"expiration"`
		Conditions []json.RawMessage `json:"conditions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, Errorf(ErrMalformedPolicy, "policy: %v", err)
	}
	p := &PostPolicy{MaxSize: -1}
	if p.Expiration, err = time.Parse(time.RFC3339Nano, doc.Expiration); err != nil {
		return nil, Errorf(ErrMalformedPolicy, "policy expiration %q", doc.Expiration)
	}
	for _, c := range doc.Conditions {
		var obj map[string]any
		if json.Unmarshal(c, &obj) == nil {
			if len(obj) != 1 {
				return nil, Errorf(ErrMalformedPolicy, "condition %s", c)
			}
			for k, v := range obj {
				s, ok := v.(string)
				if !ok {
					return nil, Errorf(ErrMalformedPolicy, "condition %s", c)
				}
				p.conditions = append(p.conditions, postCondition{"eq", strings.ToLower(strings.TrimPrefix(k, "$")), s})
			}
			continue
		}
		var arr []any
		if err := json.Unmarshal(c, &arr); err != nil || len(arr) != 3 {
			return nil, Errorf(ErrMalformedPolicy, "condition %s", c)
		}
		op, _ := arr[0].(string)
		switch strings.ToLower(op) {
		case "eq", "starts-with":
			f, ok1 := arr[1].(string)
			v, ok2 := arr[2].(string)
			if !ok1 || !ok2 || !strings.HasPrefix(f, "$") {
				return nil, Errorf(ErrMalformedPolicy, "condition %s", c)
			}
			p.conditions = append(p.conditions, postCondition{strings.ToLower(op), strings.ToLower(f[1:]), v})
		case "content-length-range":
			lo, ok1 := arr[1].(float64)
			hi, ok2 := arr[2].(float64)
			if !ok1 || !ok2 || lo < 0 || hi < lo {
				return nil, Errorf(ErrMalformedPolicy, "condition %s", c)
			}
			p.MinSize, p.MaxSize = int64(lo), int64(hi)
		default:
			return nil, Errorf(ErrMalformedPolicy, "condition %s", c)
		}
	}
	return p, nil
}

// exemptFields need no condition.
func exemptField(name string) bool {
	switch name {
	case "policy", "x-amz-signature", "signature", "file", "awsaccesskeyid":
		return true
	}
	return strings.HasPrefix(name, "x-ignore-")
}

// check evaluates the conditions against the form fields (lowercase
// names) and the bucket.
func (p *PostPolicy) check(fields map[string]string, bucket string) error {
	covered := map[string]bool{}
	for _, c := range p.conditions {
		got, ok := fields[c.field]
		if c.field == "bucket" {
			got, ok = bucket, true
		}
		covered[c.field] = true
		switch c.op {
		case "eq":
			if !ok || got != c.value {
				return Errorf(ErrPolicyDenied, "Policy Condition failed: [\"eq\", \"$%s\", %q]", c.field, c.value)
			}
		case "starts-with":
			if !strings.HasPrefix(got, c.value) {
				return Errorf(ErrPolicyDenied, "Policy Condition failed: [\"starts-with\", \"$%s\", %q]", c.field, c.value)
			}
		}
	}
	for name := range fields {
		if !exemptField(name) && !covered[name] {
			return Errorf(ErrPolicyDenied, "Extra input fields: %s", name)
		}
	}
	return nil
}

// VerifyPost authenticates a POST policy upload from its form fields
// (names lowercased) for bucket, and returns the checked policy.
func (v *Verifier) VerifyPost(fields map[string]string, bucket string) (Identity, *PostPolicy, error) {
	b64 := fields["policy"]
	if b64 == "" {
		return Identity{}, nil, Errorf(ErrAccessDenied, "no policy: anonymous POST uploads are not allowed")
	}
	var id Identity
	switch {
	case fields["x-amz-algorithm"] == algorithm && fields["x-amz-signature"] == "":
		return Identity{}, nil, Errorf(ErrInvalidArgument, "Bucket POST must contain a field named 'x-amz-signature'.")
	case fields["awsaccesskeyid"] != "" && fields["signature"] == "":
		return Identity{}, nil, Errorf(ErrInvalidArgument, "Bucket POST must contain a field named 'Signature'.")
	case fields["x-amz-algorithm"] == algorithm:
		sc, ok := parseCredential(fields["x-amz-credential"])
		if !ok || sc.date != strings.SplitN(fields["x-amz-date"], "T", 2)[0] {
			return Identity{}, nil, Errorf(ErrAuthQueryMalformed, "x-amz-credential / x-amz-date")
		}
		secret, err := v.creds.SecretKey(sc.accessKey)
		if err != nil {
			return Identity{}, nil, err
		}
		want := hmacHex(signingKey(secret, sc), b64)
		if !hmac.Equal([]byte(want), []byte(fields["x-amz-signature"])) {
			return Identity{}, nil, ErrSignatureDoesNotMatch
		}
		id = Identity{AccessKey: sc.accessKey, Presigned: true, Region: sc.region}
	case fields["awsaccesskeyid"] != "":
		secret, err := v.creds.SecretKey(fields["awsaccesskeyid"])
		if err != nil {
			return Identity{}, nil, err
		}
		m := hmac.New(sha1.New, []byte(secret))
		m.Write([]byte(b64))
		if !hmac.Equal([]byte(base64.StdEncoding.EncodeToString(m.Sum(nil))), []byte(fields["signature"])) {
			return Identity{}, nil, ErrSignatureDoesNotMatch
		}
		id = Identity{AccessKey: fields["awsaccesskeyid"], Presigned: true}
	default:
		return Identity{}, nil, Errorf(ErrUnsupportedAlgorithm, "POST policy signature")
	}
	p, err := ParsePostPolicy(b64)
	if err != nil {
		return Identity{}, nil, err
	}
	if v.now().After(p.Expiration) {
		return Identity{}, nil, Errorf(ErrPolicyDenied, "Invalid according to Policy: Policy expired.")
	}
	if err := p.check(fields, bucket); err != nil {
		return Identity{}, nil, err
	}
	return id, p, nil
}

// PostResponse is the answer to success_action_status 201.
type PostResponse struct {
	XMLName  struct{} `xml:"PostResponse"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}
