// Sherd e2e: the AWS SDK for JavaScript v3 (@aws-sdk/client-s3 and
// @aws-sdk/lib-storage) with its defaults, including the checksums it
// computes and sends on every upload. Byte comparisons throughout.
// Environment: SHERD_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsV2Command, DeleteObjectsCommand, DeleteBucketCommand, PutBucketVersioningCommand,
  ListObjectVersionsCommand, PutObjectTaggingCommand, GetObjectTaggingCommand, CopyObjectCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const s3 = new S3Client({
  endpoint: process.env.SHERD_ENDPOINT,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
});
const Bucket = "e2e-js";
const body = async (out) => Buffer.from(await out.Body.transformToByteArray());

await s3.send(new CreateBucketCommand({ Bucket }));

// PutObject with the SDK's default checksum (CRC32), GET in checksum mode
// (the SDK validates the body against it), user metadata.
const small = randomBytes(100_003);
const put = await s3.send(new PutObjectCommand({ Bucket, Key: "dir/small.bin", Body: small, Metadata: { origin: "node" } }));
assert.ok(put.ETag);
const got = await s3.send(new GetObjectCommand({ Bucket, Key: "dir/small.bin", ChecksumMode: "ENABLED" }));
assert.deepEqual(await body(got), small);
assert.equal(got.Metadata.origin, "node");
const empty = await s3.send(new PutObjectCommand({ Bucket, Key: "empty", Body: Buffer.alloc(0) }));
assert.equal((await body(await s3.send(new GetObjectCommand({ Bucket, Key: "empty" })))).length, 0);

// lib-storage: a multipart upload of a stream (5 MiB parts, 3 at a time).
const big = randomBytes(17 * 1024 * 1024 + 5);
const up = new Upload({ client: s3, params: { Bucket, Key: "dir/big.bin", Body: big }, partSize: 5 * 1024 * 1024, queueSize: 3 });
const done = await up.done();
assert.match(done.ETag, /-4"$/);
assert.deepEqual(await body(await s3.send(new GetObjectCommand({ Bucket, Key: "dir/big.bin", ChecksumMode: "ENABLED" }))), big);
const head = await s3.send(new HeadObjectCommand({ Bucket, Key: "dir/big.bin" }));
assert.equal(head.ContentLength, big.length);

// A range.
const part = await s3.send(new GetObjectCommand({ Bucket, Key: "dir/big.bin", Range: "bytes=1000-1999" }));
assert.deepEqual(await body(part), big.subarray(1000, 2000));

// Listing with a delimiter, copy, tagging.
const list = await s3.send(new ListObjectsV2Command({ Bucket, Delimiter: "/" }));
assert.deepEqual(list.CommonPrefixes.map((p) => p.Prefix), ["dir/"]);
assert.deepEqual(list.Contents.map((o) => o.Key), ["empty"]);
await s3.send(new CopyObjectCommand({ Bucket, Key: "copy.bin", CopySource: `${Bucket}/dir/small.bin` }));
assert.deepEqual(await body(await s3.send(new GetObjectCommand({ Bucket, Key: "copy.bin" }))), small);
await s3.send(new PutObjectTaggingCommand({ Bucket, Key: "copy.bin", Tagging: { TagSet: [{ Key: "k", Value: "v" }] } }));
const tags = await s3.send(new GetObjectTaggingCommand({ Bucket, Key: "copy.bin" }));
assert.deepEqual(tags.TagSet, [{ Key: "k", Value: "v" }]);

// Versioning.
await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: "Enabled" } }));
const v1 = await s3.send(new PutObjectCommand({ Bucket, Key: "versioned", Body: "one" }));
const v2 = await s3.send(new PutObjectCommand({ Bucket, Key: "versioned", Body: "two" }));
assert.notEqual(v1.VersionId, v2.VersionId);
const old = await s3.send(new GetObjectCommand({ Bucket, Key: "versioned", VersionId: v1.VersionId }));
assert.equal((await body(old)).toString(), "one");

// Empty the bucket as tools do: every version and delete marker, then the bucket.
const versions = await s3.send(new ListObjectVersionsCommand({ Bucket }));
const ids = [...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key, VersionId: v.VersionId }));
assert.equal(ids.length, 6);
const del = await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: ids } }));
assert.equal(del.Deleted.length, 6);
assert.equal(del.Errors, undefined);
await s3.send(new DeleteBucketCommand({ Bucket }));
console.log("aws-sdk-js v3", (await import("@aws-sdk/client-s3/package.json", { with: { type: "json" } })).default.version, ": all checks passed");
