package gateway

// Bucket lifecycle configuration: validated as AWS validates it, stored
// with the bucket as metadata.LifecycleRule, carried out by the
// lifecycle worker (package lifecycle) that every gateway process runs.

import (
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"time"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

const (
	maxLifecycleRules = 1000
	maxRuleID         = 255
	maxNewerVersions  = 100
)

// lifecycleRules validates a configuration and converts it.
func lifecycleRules(c s3.LifecycleConfiguration) ([]metadata.LifecycleRule, error) {
	if len(c.Rules) == 0 {
		return nil, s3.Errorf(s3.ErrMalformedXML, "a lifecycle configuration needs at least one rule")
	}
	if len(c.Rules) > maxLifecycleRules {
		return nil, s3.Errorf(s3.ErrInvalidArgument, "at most %d rules", maxLifecycleRules)
	}
	ids := map[string]bool{}
	out := make([]metadata.LifecycleRule, 0, len(c.Rules))
	for _, x := range c.Rules {
		r, err := lifecycleRule(x)
		if err != nil {
			return nil, err
		}
		if ids[r.ID] {
			return nil, s3.Errorf(s3.ErrInvalidArgument, "Rule ID must be unique. Found same ID for more than one rule")
		}
		ids[r.ID] = true
		out = append(out, r)
	}
	return out, nil
}

func lifecycleRule(x s3.LifecycleRule) (metadata.LifecycleRule, error) {
	r := metadata.LifecycleRule{ID: x.ID}
	if r.ID == "" {
		var b [10]byte
		rand.Read(b[:])
		r.ID = base32.StdEncoding.EncodeToString(b[:])
	}
	if len(r.ID) > maxRuleID {
		return r, s3.Errorf(s3.ErrInvalidArgument, "ID length should not exceed allowed limit of %d", maxRuleID)
	}
	switch x.Status {
	case "Enabled":
		r.Enabled = true
	case "Disabled":
	default:
		return r, s3.Errorf(s3.ErrMalformedXML, "Status must be Enabled or Disabled")
	}
	if len(x.Transitions) > 0 || len(x.NoncurrentVersionTransitions) > 0 {
		return r, s3.Errorf(s3.ErrNotImplemented, "lifecycle transitions (Sherd has one storage class)")
	}
	var err error
	switch {
	case x.Prefix != nil && x.Filter != nil:
		return r, s3.Errorf(s3.ErrMalformedXML, "a rule has either Prefix or Filter")
	case x.Prefix != nil:
		r.Filter.Prefix = *x.Prefix
	case x.Filter != nil:
		if r.Filter, err = lifecycleFilter(*x.Filter); err != nil {
			return r, err
		}
	}
	if x.Expiration == nil && x.NoncurrentVersionExpiration == nil && x.AbortIncompleteMultipartUpload == nil {
		return r, s3.Errorf(errInvalidRequest, "At least one action needs to be specified in a rule")
	}
	if e := x.Expiration; e != nil {
		set := 0
		if e.Days != 0 {
			set++
			if e.Days < 0 {
				return r, s3.Errorf(s3.ErrInvalidArgument, "'Days' for Expiration action must be a positive integer")
			}
			r.ExpireDays = e.Days
		}
		if e.Date != "" {
			set++
			d, err := time.Parse(time.RFC3339Nano, e.Date)
			if err != nil {
				return r, s3.Errorf(s3.ErrInvalidArgument, "'Date' must be in ISO 8601 format")
			}
			if d = d.UTC(); d.Hour() != 0 || d.Minute() != 0 || d.Second() != 0 || d.Nanosecond() != 0 {
				return r, s3.Errorf(s3.ErrInvalidArgument, "'Date' must be at midnight GMT")
			}
			r.ExpireDate = d
		}
		if e.ExpiredObjectDeleteMarker != nil {
			set++
			if len(r.Filter.Tags) > 0 {
				return r, s3.Errorf(errInvalidRequest, "Delete marker expiration cannot be specified with Tag filter")
			}
			r.ExpiredDeleteMarker = *e.ExpiredObjectDeleteMarker
		}
		if set != 1 {
			return r, s3.Errorf(s3.ErrMalformedXML, "Expiration takes exactly one of Days, Date and ExpiredObjectDeleteMarker")
		}
	}
	if n := x.NoncurrentVersionExpiration; n != nil {
		if n.NoncurrentDays <= 0 {
			return r, s3.Errorf(s3.ErrInvalidArgument, "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer")
		}
		if n.NewerNoncurrentVersions < 0 || n.NewerNoncurrentVersions > maxNewerVersions {
			return r, s3.Errorf(s3.ErrInvalidArgument, "'NewerNoncurrentVersions' must be between 1 and %d", maxNewerVersions)
		}
		r.NoncurrentDays, r.NewerNoncurrent = n.NoncurrentDays, n.NewerNoncurrentVersions
	}
	if a := x.AbortIncompleteMultipartUpload; a != nil {
		if a.DaysAfterInitiation <= 0 {
			return r, s3.Errorf(s3.ErrInvalidArgument, "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer")
		}
		if len(r.Filter.Tags) > 0 || r.Filter.SizeGT > 0 || r.Filter.SizeLT > 0 {
			return r, s3.Errorf(errInvalidRequest, "AbortIncompleteMultipartUpload cannot be specified with Tags or object size filters")
		}
		r.AbortDays = a.DaysAfterInitiation
	}
	return r, nil
}

// lifecycleFilter converts a Filter: one condition, or And of several.
func lifecycleFilter(x s3.LifecycleFilter) (metadata.LifecycleFilter, error) {
	var f metadata.LifecycleFilter
	set := 0
	var tags []s3.Tag
	var gt, lt *int64
	if x.Prefix != nil {
		set++
		f.Prefix = *x.Prefix
	}
	if x.Tag != nil {
		set++
		tags = []s3.Tag{*x.Tag}
	}
	if x.ObjectSizeGreaterThan != nil {
		set++
		gt = x.ObjectSizeGreaterThan
	}
	if x.ObjectSizeLessThan != nil {
		set++
		lt = x.ObjectSizeLessThan
	}
	if a := x.And; a != nil {
		set++
		if a.Prefix != nil {
			f.Prefix = *a.Prefix
		}
		tags, gt, lt = a.Tags, a.ObjectSizeGreaterThan, a.ObjectSizeLessThan
	}
	if set > 1 {
		return f, s3.Errorf(s3.ErrMalformedXML, "a Filter holds one condition, or And")
	}
	if len(tags) > 0 {
		m, err := checkTags(tags, maxObjectTags)
		if err != nil {
			return f, s3.Errorf(s3.ErrInvalidArgument, "Filter tags: %v", err)
		}
		f.Tags = m
	}
	if gt != nil {
		if *gt < 0 {
			return f, s3.Errorf(s3.ErrInvalidArgument, "ObjectSizeGreaterThan must be a non-negative integer")
		}
		f.SizeGT = *gt
	}
	if lt != nil {
		if *lt <= 0 {
			return f, s3.Errorf(s3.ErrInvalidArgument, "ObjectSizeLessThan must be a positive integer")
		}
		f.SizeLT = *lt
	}
	if f.SizeLT > 0 && f.SizeGT >= f.SizeLT {
		return f, s3.Errorf(s3.ErrInvalidArgument, "ObjectSizeGreaterThan must be less than ObjectSizeLessThan")
	}
	return f, nil
}

// lifecycleXML is the stored rules as AWS answers them.
func lifecycleXML(rules []metadata.LifecycleRule) s3.LifecycleConfiguration {
	c := s3.LifecycleConfiguration{XMLNS: s3.XMLNS}
	for _, r := range rules {
		x := s3.LifecycleRule{ID: r.ID, Status: "Disabled", Filter: &s3.LifecycleFilter{}}
		if r.Enabled {
			x.Status = "Enabled"
		}
		f := r.Filter
		prefix := f.Prefix
		n := len(f.Tags)
		if f.SizeGT > 0 {
			n++
		}
		if f.SizeLT > 0 {
			n++
		}
		switch {
		case n == 0:
			x.Filter.Prefix = &prefix
		case n == 1 && prefix == "" && len(f.Tags) == 1:
			for k, v := range f.Tags {
				x.Filter.Tag = &s3.Tag{Key: k, Value: v}
			}
		case n == 1 && prefix == "" && f.SizeGT > 0:
			x.Filter.ObjectSizeGreaterThan = &f.SizeGT
		case n == 1 && prefix == "" && f.SizeLT > 0:
			x.Filter.ObjectSizeLessThan = &f.SizeLT
		default:
			a := &s3.LifecycleFilterAnd{Tags: tagSet(f.Tags)}
			if prefix != "" {
				a.Prefix = &prefix
			}
			if f.SizeGT > 0 {
				a.ObjectSizeGreaterThan = &f.SizeGT
			}
			if f.SizeLT > 0 {
				a.ObjectSizeLessThan = &f.SizeLT
			}
			x.Filter.And = a
		}
		switch {
		case r.ExpireDays > 0:
			x.Expiration = &s3.LifecycleExpiration{Days: r.ExpireDays}
		case !r.ExpireDate.IsZero():
			x.Expiration = &s3.LifecycleExpiration{Date: r.ExpireDate.UTC().Format(time.RFC3339)}
		case r.ExpiredDeleteMarker:
			t := true
			x.Expiration = &s3.LifecycleExpiration{ExpiredObjectDeleteMarker: &t}
		}
		if r.NoncurrentDays > 0 {
			x.NoncurrentVersionExpiration = &s3.NoncurrentExpiration{NoncurrentDays: r.NoncurrentDays, NewerNoncurrentVersions: r.NewerNoncurrent}
		}
		if r.AbortDays > 0 {
			x.AbortIncompleteMultipartUpload = &s3.AbortIncompleteUpload{DaysAfterInitiation: r.AbortDays}
		}
		c.Rules = append(c.Rules, x)
	}
	return c
}

func (g *Gateway) getBucketLifecycle(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if len(b.Lifecycle) == 0 {
		g.writeError(w, r, errNoSuchLifecycle)
		return
	}
	g.writeXML(w, r, lifecycleXML(b.Lifecycle))
}

func (g *Gateway) putBucketLifecycle(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var c s3.LifecycleConfiguration
	if err := decodeBody(r, maxLifecycleBody, &c); err != nil {
		g.writeError(w, r, err)
		return
	}
	rules, err := lifecycleRules(c)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error { b.Lifecycle = rules; return nil }); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) deleteBucketLifecycle(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error { b.Lifecycle = nil; return nil }); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
