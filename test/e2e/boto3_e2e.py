"""boto3 against Sherd with default settings (boto3 >= 1.36 sends CRC32
checksum trailers on uploads and validates response checksums)."""
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore
from botocore.exceptions import ClientError

ep = os.environ["SHERD_ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=ep)  # credentials and region from the environment


def expect_error(code, status, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"{fn.__name__}: got {got}, want {(code, status)}"
        return
    raise AssertionError(f"{fn.__name__}: no error, want {code}")


b = "e2e-boto3"
s3.create_bucket(Bucket=b)
expect_error("BucketAlreadyOwnedByYou", 409, s3.create_bucket, Bucket=b)
s3.head_bucket(Bucket=b)

data = os.urandom(3 * 1024 * 1024 + 11)
r = s3.put_object(Bucket=b, Key="dir/obj", Body=data, Metadata={"purpose": "e2e"},
                  ContentType="application/x-e2e", CacheControl="max-age=30")
assert "ChecksumCRC32" in r, r  # the default trailer checksum, verified and echoed
g = s3.get_object(Bucket=b, Key="dir/obj", ChecksumMode="ENABLED")
assert g["Body"].read() == data
assert g["ETag"] == r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
assert g["Metadata"] == {"purpose": "e2e"} and g["ContentType"] == "application/x-e2e" and g["CacheControl"] == "max-age=30"
assert g["ChecksumCRC32"] == r["ChecksumCRC32"]

# CRC32C and CRC64NVME need botocore[crt], not installed here; the Go tests cover them.
for algo in ["SHA1", "SHA256"]:
    r = s3.put_object(Bucket=b, Key=f"algo/{algo}", Body=b"checksum me", ChecksumAlgorithm=algo)
    h = s3.head_object(Bucket=b, Key=f"algo/{algo}", ChecksumMode="ENABLED")
    assert h[f"Checksum{algo}"] == r[f"Checksum{algo}"], (algo, h)

# A wrong checksum is refused and leaves nothing behind.
expect_error("BadDigest", 400, s3.put_object, Bucket=b, Key="bad", Body=b"abc", ChecksumCRC32="AAAAAA==")
expect_error("404", 404, s3.head_object, Bucket=b, Key="bad")

# Range, conditionals, copy.
g = s3.get_object(Bucket=b, Key="dir/obj", Range="bytes=100-199")
assert g["Body"].read() == data[100:200] and g["ContentRange"] == f"bytes 100-199/{len(data)}"
expect_error("InvalidRange", 416, s3.get_object, Bucket=b, Key="dir/obj", Range=f"bytes={len(data)}-")
expect_error("304", 304, s3.get_object, Bucket=b, Key="dir/obj", IfNoneMatch=g["ETag"])
expect_error("PreconditionFailed", 412, s3.get_object, Bucket=b, Key="dir/obj", IfMatch='"nope"')
expect_error("PreconditionFailed", 412, s3.put_object, Bucket=b, Key="dir/obj", Body=b"x", IfNoneMatch="*")
s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "dir/obj"})
assert s3.get_object(Bucket=b, Key="copy")["Body"].read() == data

# upload_fileobj / download_fileobj below the multipart threshold.
import io
buf = io.BytesIO()
s3.upload_fileobj(io.BytesIO(data), b, "transfer")
s3.download_fileobj(b, "transfer", buf)
assert buf.getvalue() == data

# upload_file / download_file above the multipart threshold (8 MiB): parts
# with CRC32 checksums, a COMPOSITE object checksum.
big = os.urandom(20 * 1024 * 1024 + 5)
s3.upload_fileobj(io.BytesIO(big), b, "big")
h = s3.head_object(Bucket=b, Key="big", ChecksumMode="ENABLED")
assert h["ETag"].endswith('-3"') and h["ContentLength"] == len(big), h
buf = io.BytesIO()
s3.download_fileobj(b, "big", buf)
assert buf.getvalue() == big
mp = s3.create_multipart_upload(Bucket=b, Key="aborted")
s3.upload_part(Bucket=b, Key="aborted", UploadId=mp["UploadId"], PartNumber=1, Body=b"x" * 100)
assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])] == ["aborted"]
s3.abort_multipart_upload(Bucket=b, Key="aborted", UploadId=mp["UploadId"])
expect_error("NoSuchUpload", 404, s3.list_parts, Bucket=b, Key="aborted", UploadId=mp["UploadId"])

# Listing with a paginator.
for i in range(12):
    s3.put_object(Bucket=b, Key=f"many/{i:02d}", Body=b"")
keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="many/", PaginationConfig={"PageSize": 5}) for o in p["Contents"]]
assert keys == [f"many/{i:02d}" for i in range(12)], keys
v1 = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=b, Prefix="many/", PaginationConfig={"PageSize": 5}) for o in p["Contents"]]
assert v1 == keys, v1
top = s3.list_objects_v2(Bucket=b, Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["algo/", "dir/", "many/"], top
# boto3 asks for encoding-type=url and decodes what AWS encodes: keys, markers
# and prefixes with spaces, '+' and '%' come back as they were sent.
for k in ["sp ace/a+b", "sp ace/c%d", "sp ace/sub dir/x"]:
    s3.put_object(Bucket=b, Key=k, Body=b"")
v1 = s3.list_objects(Bucket=b, Prefix="sp ace/", Delimiter="/", Marker="sp ace/a+b", MaxKeys=1)
assert (v1["Prefix"], v1["Delimiter"], v1["Marker"], v1["NextMarker"]) == ("sp ace/", "/", "sp ace/a+b", "sp ace/c%d"), v1
assert [o["Key"] for o in v1["Contents"]] == ["sp ace/c%d"], v1
v2 = s3.list_objects_v2(Bucket=b, Prefix="sp ace/", Delimiter=" ", StartAfter="sp ace/a+b")
assert (v2["Prefix"], v2["Delimiter"], v2["StartAfter"]) == ("sp ace/", " ", "sp ace/a+b"), v2
assert [o["Key"] for o in v2["Contents"]] == ["sp ace/c%d"], v2
assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["sp ace/sub "], v2
s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in ["sp ace/a+b", "sp ace/c%d", "sp ace/sub dir/x"]]})

# Presigned GET and PUT with plain HTTP.
url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "dir/obj"}, ExpiresIn=60)
assert urllib.request.urlopen(url).read() == data
put_url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "presigned-put"}, ExpiresIn=60)
# (boto3 presigns with SigV2 here, which signs Content-Type: send none, as signed.)
u = urllib.parse.urlsplit(put_url)
conn = http.client.HTTPConnection(u.netloc)
conn.request("PUT", u.path + "?" + u.query, body=b"via presigned put")
assert conn.getresponse().status == 200
assert s3.get_object(Bucket=b, Key="presigned-put")["Body"].read() == b"via presigned put"
try:
    urllib.request.urlopen(url.replace("dir/obj", "copy"))
    raise AssertionError("altered presigned URL accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403

# Presigned POST (HTML form upload), sent by curl -F.
import subprocess
from botocore.config import Config
s3v4 = boto3.client("s3", endpoint_url=ep, config=Config(signature_version="s3v4"))
for client in (s3, s3v4):  # boto3's default here signs the policy with SigV2; s3v4 with SigV4
    post = client.generate_presigned_post(b, "forms/${filename}", Fields={"Content-Type": "text/plain"},
                                          Conditions=[{"Content-Type": "text/plain"}, ["content-length-range", 1, 100]], ExpiresIn=60)
    with open("/tmp/sherd-e2e-form.txt", "w") as f:
        f.write("from a form")
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"]
    for k, v in post["fields"].items():
        args += ["-F", f"{k}={v}"]
    code = subprocess.run(args + ["-F", "file=@/tmp/sherd-e2e-form.txt", post["url"]], capture_output=True, text=True).stdout
    assert code == "204", code
    assert s3.get_object(Bucket=b, Key="forms/sherd-e2e-form.txt")["Body"].read() == b"from a form"
    big = subprocess.run(args + ["-F", "file=@/dev/null;filename=empty.txt", post["url"]], capture_output=True, text=True).stdout
    assert big == "400", big  # below content-length-range
os.remove("/tmp/sherd-e2e-form.txt")

# Versioning, and emptying a versioned bucket the way tools do it
# (list_object_versions, then delete_objects with version ids).
vb = b + "-versions"
s3.create_bucket(Bucket=vb)
s3.put_bucket_versioning(Bucket=vb, VersioningConfiguration={"Status": "Enabled"})
assert s3.get_bucket_versioning(Bucket=vb)["Status"] == "Enabled"
v1 = s3.put_object(Bucket=vb, Key="doc", Body=b"first")["VersionId"]
v2 = s3.put_object(Bucket=vb, Key="doc", Body=b"second")["VersionId"]
assert v1 != v2
assert s3.get_object(Bucket=vb, Key="doc", VersionId=v1)["Body"].read() == b"first"
dm = s3.delete_object(Bucket=vb, Key="doc")
assert dm["DeleteMarker"] and dm["VersionId"], dm
expect_error("NoSuchKey", 404, s3.get_object, Bucket=vb, Key="doc")
lv = s3.list_object_versions(Bucket=vb)
assert [v["VersionId"] for v in lv["Versions"]] == [v2, v1], lv
assert [(d["VersionId"], d["IsLatest"]) for d in lv["DeleteMarkers"]] == [(dm["VersionId"], True)], lv
s3.delete_object(Bucket=vb, Key="doc", VersionId=dm["VersionId"])
assert s3.get_object(Bucket=vb, Key="doc")["Body"].read() == b"second"
expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=vb)
ids = [{"Key": v["Key"], "VersionId": v["VersionId"]} for p in s3.get_paginator("list_object_versions").paginate(Bucket=vb)
       for v in p.get("Versions", []) + p.get("DeleteMarkers", [])]
r = s3.delete_objects(Bucket=vb, Delete={"Objects": ids})
assert len(r["Deleted"]) == 2 and not r.get("Errors"), r
s3.delete_bucket(Bucket=vb)

# Wrong secret.
bad = boto3.client("s3", endpoint_url=ep, aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong")
expect_error("SignatureDoesNotMatch", 403, bad.list_objects_v2, Bucket=b)

# Clean up with delete_objects.
keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=b) for o in p.get("Contents", [])]
expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=b)
r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys]})
assert len(r["Deleted"]) == len(keys) and not r.get("Errors"), r
s3.delete_bucket(Bucket=b)
expect_error("NoSuchBucket", 404, s3.list_objects_v2, Bucket=b)
print("boto3", boto3.__version__, "botocore", botocore.__version__, ": all checks passed")
