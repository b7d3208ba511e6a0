package s3

import (
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// CORSRule is one rule of a bucket's CORS configuration.
type CORSRule struct {
	ID             string   `xml:"ID,omitempty"`
	AllowedOrigins []string `xml:"AllowedOrigin"`
	AllowedMethods []string `xml:"AllowedMethod"`
	AllowedHeaders []string `xml:"AllowedHeader,omitempty"`
	ExposeHeaders  []string `xml:"ExposeHeader,omitempty"`
	MaxAgeSeconds  *int     `xml:"MaxAgeSeconds,omitempty"`
}

// CORSConfiguration is the PutBucketCors body and GetBucketCors answer.
type CORSConfiguration struct {
	XMLName xml.Name   `xml:"CORSConfiguration"`
	XMLNS   string     `xml:"xmlns,attr,omitempty"`
	Rules   []CORSRule `xml:"CORSRule"`
}

var corsMethods = []string{"GET", "PUT", "HEAD", "POST", "DELETE"}

// MaxCORSBody bounds a CORS configuration, as AWS does (64 KB); it is
// stored in the bucket's etcd value, which must stay far below etcd's
// request limit.
const MaxCORSBody = 64 << 10

// ParseCORS parses and validates a CORS configuration as S3 does.
// Errors wrap ErrMalformedXML or ErrInvalidArgument.
func ParseCORS(body []byte) (CORSConfiguration, error) {
	var c CORSConfiguration
	if len(body) > MaxCORSBody {
		return c, Errorf(ErrMalformedXML, "a CORS configuration is at most 64 KB")
	}
	if err := UnmarshalXML(body, &c); err != nil {
		return c, err
	}
	if len(c.Rules) == 0 || len(c.Rules) > 100 {
		return c, Errorf(ErrMalformedXML, "a CORS configuration has 1 to 100 rules")
	}
	for _, r := range c.Rules {
		if len(r.AllowedOrigins) == 0 || len(r.AllowedMethods) == 0 {
			return c, Errorf(ErrMalformedXML, "a CORS rule needs AllowedOrigin and AllowedMethod")
		}
		for _, m := range r.AllowedMethods {
			if !slices.Contains(corsMethods, m) {
				return c, Errorf(ErrInvalidArgument, "Found unsupported HTTP method in CORS config. Unsupported method is %s", m)
			}
		}
		for _, o := range r.AllowedOrigins {
			if strings.Count(o, "*") > 1 {
				return c, Errorf(ErrInvalidArgument, "AllowedOrigin %q can not have more than one wildcard.", o)
			}
		}
		for _, h := range r.AllowedHeaders {
			if strings.Count(h, "*") > 1 {
				return c, Errorf(ErrInvalidArgument, "AllowedHeader %q can not have more than one wildcard.", h)
			}
		}
	}
	return c, nil
}

// wildMatch matches s against a pattern with at most one '*'.
func wildMatch(pattern, s string) bool {
	before, after, found := strings.Cut(pattern, "*")
	if !found {
		return pattern == s
	}
	return len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after)
}

// Match returns the first rule allowing origin to use method with the
// request headers headers (lowercase), and whether one does.
func (c CORSConfiguration) Match(origin, method string, headers []string) (CORSRule, bool) {
	for _, r := range c.Rules {
		if !slices.ContainsFunc(r.AllowedOrigins, func(p string) bool { return wildMatch(p, origin) }) {
			continue
		}
		if !slices.Contains(r.AllowedMethods, method) {
			continue
		}
		ok := true
		for _, h := range headers {
			if !slices.ContainsFunc(r.AllowedHeaders, func(p string) bool { return wildMatch(strings.ToLower(p), h) }) {
				ok = false
				break
			}
		}
		if ok {
			return r, true
		}
	}
	return CORSRule{}, false
}

// SetHeaders writes the CORS answer of rule r to origin into h.
func (r CORSRule) SetHeaders(h http.Header, origin string, preflight bool, reqHeaders []string) {
	if slices.Contains(r.AllowedOrigins, "*") {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Add("Vary", "Origin")
	if len(r.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(r.ExposeHeaders, ", "))
	}
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", strings.Join(r.AllowedMethods, ", "))
		if len(reqHeaders) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(reqHeaders, ", "))
		}
		if r.MaxAgeSeconds != nil {
			h.Set("Access-Control-Max-Age", strconv.Itoa(*r.MaxAgeSeconds))
		}
	}
}

// RequestHeaders splits Access-Control-Request-Headers into lowercase names.
func RequestHeaders(v string) []string {
	var out []string
	for _, h := range strings.Split(v, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			out = append(out, h)
		}
	}
	return out
}
