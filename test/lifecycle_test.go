package test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sherdstore/sherd/internal/daemon"
)

// TestLifecycle: Put/Get/DeleteBucketLifecycleConfiguration with AWS's
// validation, and the gateway's worker carrying a rule out when its
// (injected) clock says the objects are due.
func TestLifecycle(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := startServerWith(t, "", func(c *daemon.ServerConfig) { c.LifecycleNow = clock; c.LifecycleInterval = time.Second })
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("lcycle")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	_, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: b})
	wantErr(t, "no configuration", err, "NoSuchLifecycleConfiguration", 404)

	rules := []types.LifecycleRule{
		{ID: aws.String("tmp"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("tmp/")},
			Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}},
		{ID: aws.String("tagged-big"), Status: types.ExpirationStatusDisabled, Filter: &types.LifecycleRuleFilter{And: &types.LifecycleRuleAndOperator{
			Prefix: aws.String("data/"), Tags: []types.Tag{{Key: aws.String("class"), Value: aws.String("scratch")}}, ObjectSizeGreaterThan: aws.Int64(1 << 20)}},
			Expiration: &types.LifecycleExpiration{Date: aws.Time(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}},
		{ID: aws.String("uploads"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")},
			AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(2)},
			NoncurrentVersionExpiration:    &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(30), NewerNoncurrentVersions: aws.Int32(2)}},
	}
	must(t)(c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: rules}}))
	got, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: b})
	noErr(t, err)
	if len(got.Rules) != 3 || aws.ToString(got.Rules[1].Filter.And.Prefix) != "data/" || len(got.Rules[1].Filter.And.Tags) != 1 ||
		!aws.ToTime(got.Rules[1].Expiration.Date).Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		aws.ToInt32(got.Rules[2].NoncurrentVersionExpiration.NewerNoncurrentVersions) != 2 || got.Rules[1].Status != types.ExpirationStatusDisabled {
		t.Fatalf("configuration read back: %+v", got.Rules)
	}

	for name, tc := range map[string]struct {
		rule types.LifecycleRule
		code string
	}{
		"no action":         {types.LifecycleRule{ID: aws.String("x"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")}}, "InvalidRequest"},
		"negative days":     {types.LifecycleRule{ID: aws.String("x"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(-1)}}, "InvalidArgument"},
		"date not midnight": {types.LifecycleRule{ID: aws.String("x"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")}, Expiration: &types.LifecycleExpiration{Date: aws.Time(time.Date(2030, 1, 1, 5, 0, 0, 0, time.UTC))}}, "InvalidArgument"},
		"id too long":       {types.LifecycleRule{ID: aws.String(strings.Repeat("i", 256)), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}}, "InvalidArgument"},
		"abort with tags": {types.LifecycleRule{ID: aws.String("x"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Tag: &types.Tag{Key: aws.String("a"), Value: aws.String("b")}},
			AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)}}, "InvalidRequest"},
		"size bounds crossed": {types.LifecycleRule{ID: aws.String("x"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{And: &types.LifecycleRuleAndOperator{
			ObjectSizeGreaterThan: aws.Int64(10), ObjectSizeLessThan: aws.Int64(5)}}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}}, "InvalidArgument"},
		"transition": {types.LifecycleRule{ID: aws.String("x"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")},
			Transitions: []types.Transition{{Days: aws.Int32(30), StorageClass: types.TransitionStorageClassGlacier}}}, "NotImplemented"},
	} {
		_, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b,
			LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{tc.rule}}})
		if err == nil || !strings.Contains(err.Error(), tc.code) {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	dup := []types.LifecycleRule{rules[0], rules[0]}
	_, err = c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: dup}})
	wantErr(t, "duplicate rule ids", err, "InvalidArgument", 400)

	// The worker: tmp/ objects expire when the clock says a day has passed.
	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("tmp/scratch"), Body: strings.NewReader("x")}))
	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("keep/this"), Body: strings.NewReader("x")}))
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("abandoned")})
	noErr(t, err)
	mu.Lock()
	now = now.Add(72 * time.Hour)
	mu.Unlock()
	waitFor(t, "tmp/scratch to expire and the upload to be aborted", 30*time.Second, func() bool {
		_, err1 := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("tmp/scratch")})
		_, err2 := c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: aws.String("abandoned"), UploadId: up.UploadId})
		return err1 != nil && err2 != nil
	})
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("keep/this")})
	noErr(t, err)

	must(t)(c.DeleteBucketLifecycle(ctx, &s3.DeleteBucketLifecycleInput{Bucket: b}))
	_, err = c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: b})
	wantErr(t, "deleted configuration", err, "NoSuchLifecycleConfiguration", 404)
}
