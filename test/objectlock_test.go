package test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestObjectLock: a bucket created with object lock (versioning on for
// good), its default retention, per-version retention in GOVERNANCE (which
// x-amz-bypass-governance-retention overrides) and COMPLIANCE (which
// nothing does), legal holds; deletes of protected versions and weakened
// retention refused with AWS's errors, delete markers still allowed.
func TestObjectLock(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("locked")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}))
	v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b})
	noErr(t, err)
	if v.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("versioning of an object lock bucket: %q", v.Status)
	}
	_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
	wantErr(t, "suspending versioning with object lock", err, "InvalidBucketState", 409)

	// Default retention.
	must(t)(c.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: b, ObjectLockConfiguration: &types.ObjectLockConfiguration{
		ObjectLockEnabled: types.ObjectLockEnabledEnabled,
		Rule:              &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1)}}}}))
	cfg, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: b})
	noErr(t, err)
	if cfg.ObjectLockConfiguration.Rule == nil || aws.ToInt32(cfg.ObjectLockConfiguration.Rule.DefaultRetention.Days) != 1 {
		t.Fatalf("lock configuration %+v", cfg.ObjectLockConfiguration)
	}
	def, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("default"), Body: strings.NewReader("d")})
	noErr(t, err)
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("default")})
	noErr(t, err)
	if h.ObjectLockMode != types.ObjectLockModeGovernance || time.Until(aws.ToTime(h.ObjectLockRetainUntilDate)) < 23*time.Hour {
		t.Fatalf("default retention: %q until %v", h.ObjectLockMode, aws.ToTime(h.ObjectLockRetainUntilDate))
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("default"), VersionId: def.VersionId})
	wantErr(t, "deleting a governance version", err, "AccessDenied", 403)
	// Shortening governance retention needs the bypass; then the delete goes through with it too.
	_, err = c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: b, Key: aws.String("default"), VersionId: def.VersionId,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(time.Now().Add(time.Hour))}})
	wantErr(t, "shortening governance retention", err, "AccessDenied", 403)
	must(t)(c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: b, Key: aws.String("default"), VersionId: def.VersionId,
		Retention:                 &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(time.Now().Add(time.Hour))},
		BypassGovernanceRetention: aws.Bool(true)}))
	must(t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("default"), VersionId: def.VersionId, BypassGovernanceRetention: aws.Bool(true)}))

	// Compliance: nothing shortens it or deletes the version; extending is fine.
	until := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	comp, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("compliance"), Body: strings.NewReader("c"),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: aws.Time(until)})
	noErr(t, err)
	ret, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: b, Key: aws.String("compliance")})
	noErr(t, err)
	if ret.Retention.Mode != types.ObjectLockRetentionModeCompliance || !aws.ToTime(ret.Retention.RetainUntilDate).Equal(until) {
		t.Fatalf("retention %+v", ret.Retention)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("compliance"), VersionId: comp.VersionId, BypassGovernanceRetention: aws.Bool(true)})
	wantErr(t, "deleting a compliance version with bypass", err, "AccessDenied", 403)
	_, err = c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: b, Key: aws.String("compliance"),
		Retention:                 &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(until)},
		BypassGovernanceRetention: aws.Bool(true)})
	wantErr(t, "compliance to governance", err, "AccessDenied", 403)
	must(t)(c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: b, Key: aws.String("compliance"),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(until.Add(time.Hour))}}))
	// A delete without a version id only adds a delete marker.
	dm, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("compliance")})
	noErr(t, err)
	if !aws.ToBool(dm.DeleteMarker) {
		t.Fatal("no delete marker")
	}
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("compliance"), VersionId: comp.VersionId})
	noErr(t, err)
	g.Body.Close()
	// DeleteObjects reports the protected version as an error.
	dd, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("compliance"), VersionId: comp.VersionId}}}})
	noErr(t, err)
	if len(dd.Errors) != 1 || aws.ToString(dd.Errors[0].Code) != "AccessDenied" {
		t.Fatalf("DeleteObjects of a locked version: %+v", dd)
	}

	// Legal hold.
	held, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("held"), Body: strings.NewReader("h"),
		ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
	noErr(t, err)
	must(t)(c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: b, Key: aws.String("held"), VersionId: held.VersionId,
		Retention: &types.ObjectLockRetention{}, BypassGovernanceRetention: aws.Bool(true)})) // removes the default retention
	lh, err := c.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: b, Key: aws.String("held")})
	noErr(t, err)
	if lh.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
		t.Fatalf("legal hold %q", lh.LegalHold.Status)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("held"), VersionId: held.VersionId, BypassGovernanceRetention: aws.Bool(true)})
	wantErr(t, "deleting a version on legal hold", err, "AccessDenied", 403)
	must(t)(c.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{Bucket: b, Key: aws.String("held"),
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOff}}))
	must(t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("held"), VersionId: held.VersionId}))

	// Lock headers need an object lock bucket; a retain-until date in the past is refused.
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("plain")}))
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String("k"), Body: strings.NewReader("x"),
		ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
	wantErr(t, "lock headers without object lock", err, "InvalidRequest", 400)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("past"), Body: strings.NewReader("x"),
		ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(time.Now().Add(-time.Hour))})
	wantErr(t, "retain-until date in the past", err, "InvalidArgument", 400)
	_, err = c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String("plain")})
	wantErr(t, "lock configuration of a plain bucket", err, "ObjectLockConfigurationNotFoundError", 404)
}
