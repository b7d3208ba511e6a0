package gateway

// Object lock (WORM). A bucket created with x-amz-bucket-object-lock-enabled
// has versioning enabled for good; its versions may carry retention
// (GOVERNANCE or COMPLIANCE until a date) and a legal hold, set on write
// (headers, or the bucket's default retention) or later. A protected
// version cannot be removed: the check is made by the store in the
// transaction that would remove it (metadata.Lock.Protects), so a
// retention change racing a delete cannot slip through. Deleting without a
// version id only adds a delete marker, which needs no permission of the
// lock, as in AWS.

import (
	"net/http"
	"strings"
	"time"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

var (
	errInvalidBucketState  = &s3.Error{Code: "InvalidBucketState", Message: "The request is not valid with the current state of the bucket.", Status: http.StatusConflict}
	errLocked              = &s3.Error{Code: "AccessDenied", Message: "Access Denied because object protected by object lock.", Status: http.StatusForbidden}
	errNoObjectLockConfig  = &s3.Error{Code: "NoSuchObjectLockConfiguration", Message: "The specified object does not have a ObjectLock configuration", Status: http.StatusNotFound}
	errMissingLockConfig   = &s3.Error{Code: "InvalidRequest", Message: "Bucket is missing Object Lock Configuration", Status: http.StatusBadRequest}
	errMalformedRetainDate = &s3.Error{Code: "InvalidArgument", Message: "The retain until date must be provided in ISO 8601 format and be in the future", Status: http.StatusBadRequest}
)

// bypassGovernance reads x-amz-bypass-governance-retention.
func bypassGovernance(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("X-Amz-Bypass-Governance-Retention"), "true")
}

func validLockMode(m string) bool {
	return m == metadata.LockGovernance || m == metadata.LockCompliance
}

// parseRetainUntil reads a retain-until date, which must be in the future.
func parseRetainUntil(v string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || !t.After(now) {
		return time.Time{}, errMalformedRetainDate
	}
	return t.UTC(), nil
}

// writeLock is the lock a new version of b gets: the x-amz-object-lock-*
// headers, or the bucket's default retention. nil: none.
func writeLock(h http.Header, b metadata.Bucket, now time.Time) (*metadata.Lock, error) {
	mode, until, hold := h.Get("X-Amz-Object-Lock-Mode"), h.Get("X-Amz-Object-Lock-Retain-Until-Date"), h.Get("X-Amz-Object-Lock-Legal-Hold")
	if mode == "" && until == "" && hold == "" {
		if !b.ObjectLock || b.LockDefault == nil {
			return nil, nil
		}
		d := b.LockDefault
		return &metadata.Lock{Mode: d.Mode, RetainUntil: now.UTC().AddDate(d.Years, 0, d.Days)}, nil
	}
	if !b.ObjectLock {
		return nil, errMissingLockConfig
	}
	l := &metadata.Lock{}
	switch {
	case (mode == "") != (until == ""):
		return nil, s3.Errorf(s3.ErrInvalidArgument, "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied")
	case mode != "" && !validLockMode(mode):
		return nil, s3.Errorf(s3.ErrInvalidArgument, "Unknown wormMode directive.")
	case mode != "":
		t, err := parseRetainUntil(until, now)
		if err != nil {
			return nil, err
		}
		l.Mode, l.RetainUntil = mode, t
	}
	switch hold {
	case "", "OFF":
	case "ON":
		l.LegalHold = true
	default:
		return nil, s3.Errorf(s3.ErrInvalidArgument, "Legal Hold must be either of 'ON' or 'OFF'")
	}
	if l.Mode == "" && !l.LegalHold {
		return nil, nil
	}
	return l, nil
}

// setLockHeaders answers a version's lock on GET and HEAD.
func setLockHeaders(h http.Header, obj metadata.Object) {
	if obj.Lock == nil {
		return
	}
	if obj.Lock.Mode != "" {
		h.Set("X-Amz-Object-Lock-Mode", obj.Lock.Mode)
		h.Set("X-Amz-Object-Lock-Retain-Until-Date", obj.Lock.RetainUntil.UTC().Format(time.RFC3339))
	}
	if obj.Lock.LegalHold {
		h.Set("X-Amz-Object-Lock-Legal-Hold", "ON")
	}
}

func (g *Gateway) getObjectLockConfig(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if !b.ObjectLock {
		g.writeError(w, r, errObjectLockNotFound)
		return
	}
	c := s3.ObjectLockConfiguration{XMLNS: s3.XMLNS, ObjectLockEnabled: "Enabled"}
	if d := b.LockDefault; d != nil {
		c.Rule = &s3.ObjectLockRule{}
		c.Rule.DefaultRetention.Mode, c.Rule.DefaultRetention.Days, c.Rule.DefaultRetention.Years = d.Mode, d.Days, d.Years
	}
	g.writeXML(w, r, c)
}

// putObjectLockConfig sets a bucket's default retention, and enables
// object lock on a bucket whose versioning is enabled (as AWS allows).
func (g *Gateway) putObjectLockConfig(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var c s3.ObjectLockConfiguration
	if err := decodeBody(r, maxSmallXMLBody, &c); err != nil {
		g.writeError(w, r, err)
		return
	}
	if c.ObjectLockEnabled != "Enabled" {
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "ObjectLockEnabled must be Enabled"))
		return
	}
	var rule *metadata.LockRule
	if c.Rule != nil {
		d := c.Rule.DefaultRetention
		switch {
		case !validLockMode(d.Mode):
			g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "DefaultRetention Mode must be GOVERNANCE or COMPLIANCE"))
			return
		case (d.Days > 0) == (d.Years > 0), d.Days < 0, d.Years < 0:
			g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "DefaultRetention needs either Days or Years, a positive number"))
			return
		case d.Days > 36500 || d.Years > 100:
			g.writeError(w, r, s3.Errorf(s3.ErrInvalidArgument, "Default retention period too large"))
			return
		}
		rule = &metadata.LockRule{Mode: d.Mode, Days: d.Days, Years: d.Years}
	}
	err = g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error {
		if !b.ObjectLock && b.Versioning != metadata.VersioningEnabled {
			return s3.Errorf(errInvalidBucketState, "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration")
		}
		b.ObjectLock, b.LockDefault = true, rule
		return nil
	})
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// lockTarget loads the bucket (which must have object lock) of a
// retention or legal hold request and its version id.
func (g *Gateway) lockTarget(r *http.Request) (metadata.Bucket, string, error) {
	b, err := g.bucket(r)
	if err != nil {
		return b, "", err
	}
	if !b.ObjectLock {
		return b, "", errMissingLockConfig
	}
	vid, err := versionParam(r)
	return b, vid, err
}

func (g *Gateway) getObjectRetention(w http.ResponseWriter, r *http.Request) {
	b, _, err := g.lockTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	obj, err := g.readVersion(w, r, b, reqOf(r).key)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if obj.Lock == nil || obj.Lock.Mode == "" {
		g.writeError(w, r, errNoObjectLockConfig)
		return
	}
	g.writeXML(w, r, s3.Retention{XMLNS: s3.XMLNS, Mode: obj.Lock.Mode, RetainUntilDate: obj.Lock.RetainUntil.UTC().Format(time.RFC3339)})
}

// putObjectRetention sets a version's retention. Extending it is always
// allowed; shortening or removing it, or changing its mode, only for
// governance with x-amz-bypass-governance-retention; never for compliance
// (decided on the version as the store holds it, in the update).
func (g *Gateway) putObjectRetention(w http.ResponseWriter, r *http.Request) {
	b, vid, err := g.lockTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var ret s3.Retention
	if err := decodeBody(r, maxSmallXMLBody, &ret); err != nil {
		g.writeError(w, r, err)
		return
	}
	now := g.now()
	var until time.Time
	switch {
	case ret.Mode == "" && ret.RetainUntilDate == "": // removes retention
	case !validLockMode(ret.Mode):
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "Mode must be GOVERNANCE or COMPLIANCE"))
		return
	default:
		if until, err = parseRetainUntil(ret.RetainUntilDate, now); err != nil {
			g.writeError(w, r, err)
			return
		}
	}
	bypass := bypassGovernance(r)
	err = g.store.UpdateObject(r.Context(), b.Name, reqOf(r).key, vid, func(o *metadata.Object) error {
		var cur metadata.Lock
		if o.Lock != nil {
			cur = *o.Lock
		}
		if cur.Mode != "" && now.Before(cur.RetainUntil) {
			weaker := ret.Mode != cur.Mode || until.Before(cur.RetainUntil)
			if weaker && (cur.Mode == metadata.LockCompliance || !bypass) {
				return errLocked
			}
		}
		cur.Mode, cur.RetainUntil = ret.Mode, until
		o.Lock = &cur
		if cur == (metadata.Lock{}) {
			o.Lock = nil
		}
		return nil
	})
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	setVersionHeader(w, vid)
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) getObjectLegalHold(w http.ResponseWriter, r *http.Request) {
	b, _, err := g.lockTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	obj, err := g.readVersion(w, r, b, reqOf(r).key)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	status := "OFF"
	if obj.Lock != nil && obj.Lock.LegalHold {
		status = "ON"
	}
	g.writeXML(w, r, s3.LegalHold{XMLNS: s3.XMLNS, Status: status})
}

func (g *Gateway) putObjectLegalHold(w http.ResponseWriter, r *http.Request) {
	b, vid, err := g.lockTarget(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var h s3.LegalHold
	if err := decodeBody(r, maxSmallXMLBody, &h); err != nil {
		g.writeError(w, r, err)
		return
	}
	if h.Status != "ON" && h.Status != "OFF" {
		g.writeError(w, r, s3.Errorf(s3.ErrMalformedXML, "Status must be ON or OFF"))
		return
	}
	err = g.store.UpdateObject(r.Context(), b.Name, reqOf(r).key, vid, func(o *metadata.Object) error {
		var cur metadata.Lock
		if o.Lock != nil {
			cur = *o.Lock
		}
		cur.LegalHold = h.Status == "ON"
		o.Lock = &cur
		if cur == (metadata.Lock{}) {
			o.Lock = nil
		}
		return nil
	})
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	setVersionHeader(w, vid)
	w.WriteHeader(http.StatusOK)
}
