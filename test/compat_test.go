package test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sherdstore/sherd/internal/daemon"
)

// TestLocationConstraint: a client configured for another region makes
// buckets (any LocationConstraint by default, as the gateway cannot know
// which regions its users name); the constraint is stored and returned by
// GetBucketLocation and HeadBucket. With a list configured, others are
// refused with InvalidLocationConstraint.
func TestLocationConstraint(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	eu := func(o *s3.Options) { o.Region = "eu-west-1" }
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("in-eu"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}}, eu)
	noErr(t, err)
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("in-eu")}, eu)
	noErr(t, err)
	if loc.LocationConstraint != types.BucketLocationConstraintEuWest1 {
		t.Fatalf("location %q", loc.LocationConstraint)
	}
	head, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("in-eu")}, eu)
	noErr(t, err)
	if aws.ToString(head.BucketRegion) != "eu-west-1" {
		t.Fatalf("HeadBucket region %q", aws.ToString(head.BucketRegion))
	}
	// A bucket made without a constraint is in the gateway's region: "".
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("plain")}))
	loc, err = c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("plain")})
	noErr(t, err)
	if loc.LocationConstraint != "" {
		t.Fatalf("default location %q", loc.LocationConstraint)
	}

	r := startServerWith(t, "", func(c *daemon.ServerConfig) { c.Locations = []string{"eu-west-1"} })
	rc := awsClient(t, r.Gateway.URL, true, rootPass)
	_, err = rc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("on-mars"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "mars-1"}})
	wantErr(t, "a constraint not in the list", err, "InvalidLocationConstraint", 400)
	_, err = rc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("in-eu"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}}, eu)
	noErr(t, err)
}
