#!/usr/bin/env bash
# End-to-end suite: drives the built `sherd server` with the aws CLI (v1 and
# v2), boto3 (default settings: checksum trailers), rclone, s3cmd, the AWS
# SDK for JavaScript v3, curl, nginx as a CDN and Chromium. Run by `make e2e`.
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in aws curl go; do
	command -v "$tool" >/dev/null || { echo "e2e: $tool is required" >&2; exit 1; }
done
PYTHON=
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import boto3' 2>/dev/null; then PYTHON=$p; break; fi
done
[ -n "$PYTHON" ] || { echo "e2e: python3 with boto3 is required" >&2; exit 1; }

go build -o bin/ ./cmd/sherd ./cmd/sherdctl
WORK=$(mktemp -d)
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SHERD_ROOT_USER=e2e-user SHERD_ROOT_PASSWORD=e2e-secret-password
bin/sherd server --data "$WORK/data" --address "127.0.0.1:$PORT" >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER=$!
cleanup() {
	kill "$SERVER" 2>/dev/null || true
	wait "$SERVER" 2>/dev/null || true
	if [ "${E2E_FAILED:-0}" = 1 ]; then echo "--- server log ---"; tail -50 "$WORK/server.log"; fi
	rm -rf "$WORK"
}
trap 'E2E_FAILED=1' ERR
trap cleanup EXIT

for _ in $(seq 1 300); do
	grep -q '^Sherd S3 endpoint' "$WORK/server.out" && break
	kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
	sleep 0.1
done
grep -q '^Sherd S3 endpoint' "$WORK/server.out" || { echo "e2e: server did not start" >&2; exit 1; }
EP="http://127.0.0.1:$PORT"
export SHERD_ENDPOINT=$EP
export AWS_ACCESS_KEY_ID=$SHERD_ROOT_USER AWS_SECRET_ACCESS_KEY=$SHERD_ROOT_PASSWORD
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
s3() { aws --endpoint-url "$EP" s3 "$@"; }
step() { echo "e2e: $*"; }

step "aws s3 mb / ls"
s3 mb s3://e2e-cli >/dev/null
s3 ls | grep -q e2e-cli

step "aws s3 cp up and down, byte for byte"
mkdir -p "$WORK/up" "$WORK/down"
: >"$WORK/up/empty"
printf x >"$WORK/up/one"
head -c 7340031 /dev/urandom >"$WORK/up/seven-mib"
head -c 26214411 /dev/urandom >"$WORK/up/multipart" # above the CLI's 8 MiB threshold
for f in empty one seven-mib multipart; do
	s3 cp --only-show-errors "$WORK/up/$f" "s3://e2e-cli/files/$f"
	s3 cp --only-show-errors "s3://e2e-cli/files/$f" "$WORK/down/$f"
	cmp "$WORK/up/$f" "$WORK/down/$f"
done
s3 ls s3://e2e-cli/files/ | grep -q 'seven-mib'
[ "$(s3 ls --recursive s3://e2e-cli | wc -l)" = 4 ]
aws --endpoint-url "$EP" s3api head-object --bucket e2e-cli --key files/multipart | grep -q '"ETag": "\\"[0-9a-f]*-4\\""' 

step "aws s3 sync of a directory, both ways"
mkdir -p "$WORK/tree/a/b" "$WORK/back"
for i in $(seq 1 20); do head -c $((i * 1000)) /dev/urandom >"$WORK/tree/a/f$i"; done
for i in $(seq 1 5); do head -c $((i * 333)) /dev/urandom >"$WORK/tree/a/b/g$i"; done
s3 sync --only-show-errors "$WORK/tree" s3://e2e-cli/tree
s3 sync --only-show-errors s3://e2e-cli/tree "$WORK/back"
diff -r "$WORK/tree" "$WORK/back"
# A second sync has nothing to do.
[ -z "$(s3 sync "$WORK/tree" s3://e2e-cli/tree)" ]

step "aws s3 presign + curl"
URL=$(s3 presign s3://e2e-cli/files/seven-mib --expires-in 300)
curl -fsS -o "$WORK/presigned" "$URL"
cmp "$WORK/up/seven-mib" "$WORK/presigned"
# Tampered and expired URLs are refused.
code=$(curl -s -o /dev/null -w '%{http_code}' "${URL/seven-mib/one}")
[ "$code" = 403 ]
URL=$(s3 presign s3://e2e-cli/files/one --expires-in 1)
sleep 2
code=$(curl -s -o "$WORK/expired.xml" -w '%{http_code}' "$URL")
[ "$code" = 403 ] && grep -q AccessDenied "$WORK/expired.xml"
# Range through curl on a presigned URL.
URL=$(s3 presign s3://e2e-cli/files/seven-mib --expires-in 300)
curl -fsS -r 1000-1999 -o "$WORK/range" "$URL"
cmp "$WORK/range" <(tail -c +1001 "$WORK/up/seven-mib" | head -c 1000)

step "sherdctl presign PUT and GET + curl"
URL=$(bin/sherdctl presign "s3://e2e-cli/via-sherdctl" --method PUT --expires 5m --endpoint "$EP")
curl -fsS -T "$WORK/up/seven-mib" -o /dev/null "$URL"
URL=$(bin/sherdctl presign "s3://e2e-cli/via-sherdctl" --endpoint "$EP")
curl -fsS -o "$WORK/via-sherdctl" "$URL"
cmp "$WORK/up/seven-mib" "$WORK/via-sherdctl"
s3 rm --only-show-errors s3://e2e-cli/via-sherdctl

step "gateway presign endpoint (called with curl --aws-sigv4) + curl through the URLs"
# curl 7.88 hashes the (empty) payload but does not send the
# x-amz-content-sha256 header S3 requires: send it. It also signs the query
# as written, unsorted: write the parameters in sorted order.
sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
	-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
json_url() { "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["url"])'; }
URL=$(curl -fsS "${sig[@]}" "$EP/_sherd/presign?bucket=e2e-cli&expires=300&key=via-endpoint&method=PUT" | json_url)
curl -fsS -T "$WORK/up/one" -o /dev/null "$URL"
URL=$(curl -fsS "${sig[@]}" "$EP/_sherd/presign?bucket=e2e-cli&key=via-endpoint&method=GET" | json_url)
cmp "$WORK/up/one" <(curl -fsS "$URL")
# An UploadPart URL for a multipart upload driven by a browser or a backend.
UP=$(aws --endpoint-url "$EP" s3api create-multipart-upload --bucket e2e-cli --key mp-endpoint --query UploadId --output text)
URL=$(curl -fsS "${sig[@]}" "$EP/_sherd/presign?bucket=e2e-cli&key=mp-endpoint&method=PUT&partNumber=1&uploadId=$UP" | json_url)
ETAG=$(curl -fsS -T "$WORK/up/seven-mib" -D - -o /dev/null "$URL" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
aws --endpoint-url "$EP" s3api complete-multipart-upload --bucket e2e-cli --key mp-endpoint --upload-id "$UP" \
	--multipart-upload "{\"Parts\": [{\"PartNumber\": 1, \"ETag\": $ETAG}]}" >/dev/null
s3 cp --only-show-errors s3://e2e-cli/mp-endpoint "$WORK/mp-endpoint"
cmp "$WORK/up/seven-mib" "$WORK/mp-endpoint"
# Unsigned calls to the endpoint and URLs used for another key are refused.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$EP/_sherd/presign?method=GET&bucket=e2e-cli&key=via-endpoint")" = 403 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' "${URL/mp-endpoint/other}")" = 403 ]
s3 rm --only-show-errors s3://e2e-cli/via-endpoint
s3 rm --only-show-errors s3://e2e-cli/mp-endpoint

step "aws s3 rm / rb"
s3 rm --only-show-errors s3://e2e-cli/files/one
! s3 ls s3://e2e-cli/files/one >/dev/null
if s3 rb s3://e2e-cli 2>/dev/null; then echo "rb of a non-empty bucket succeeded" >&2; exit 1; fi
s3 rm --only-show-errors --recursive s3://e2e-cli
s3 rb s3://e2e-cli >/dev/null
! s3 ls | grep -q e2e-cli

step "nginx as a caching CDN in front of a public-read bucket"
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
NP=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx-tmp" "$WORK/nginx-cache"
USERLINE=""
[ "$(id -u)" = 0 ] && USERLINE="user root;"
cat >"$WORK/nginx.conf" <<NGINX
$USERLINE
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx-tmp/body;
	proxy_temp_path $WORK/nginx-tmp/proxy;
	fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
	uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
	scgi_temp_path $WORK/nginx-tmp/scgi;
	proxy_cache_path $WORK/nginx-cache levels=1:2 keys_zone=sherd:10m max_size=1g inactive=10m use_temp_path=off;
	server {
		listen 127.0.0.1:$NP;
		location / {
			proxy_pass http://127.0.0.1:$PORT;
			proxy_http_version 1.1;
			proxy_cache sherd;
			proxy_cache_revalidate on;
			add_header X-Cache-Status \$upstream_cache_status always;
		}
	}
}
NGINX
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
NGINX_PID=$!
trap 'kill $NGINX_PID 2>/dev/null || true; cleanup' EXIT
CDN="http://127.0.0.1:$NP"
for _ in $(seq 1 50); do curl -s -o /dev/null "$CDN/" && break; sleep 0.1; done
aws --endpoint-url "$EP" s3api create-bucket --bucket e2e-cdn --acl public-read >/dev/null
head -c 1048576 /dev/urandom >"$WORK/asset"
s3 cp --only-show-errors --cache-control max-age=300 "$WORK/asset" s3://e2e-cdn/asset.bin
cache_status() { curl -fsS -o "$WORK/cdn-body" -D - "$@" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}'; }
[ "$(cache_status "$CDN/e2e-cdn/asset.bin")" = MISS ]
cmp "$WORK/asset" "$WORK/cdn-body"
[ "$(cache_status "$CDN/e2e-cdn/asset.bin")" = HIT ]
cmp "$WORK/asset" "$WORK/cdn-body"
# A Range request is answered from the cache.
[ "$(cache_status -r 1000-1999 "$CDN/e2e-cdn/asset.bin")" = HIT ]
cmp "$WORK/cdn-body" <(tail -c +1001 "$WORK/asset" | head -c 1000)
# Anonymous writes through the CDN are refused.
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data x "$CDN/e2e-cdn/evil")
[ "$code" = 403 ]
# Revalidation: max-age=1 expires, nginx asks Sherd with If-Modified-Since /
# If-None-Match and gets 304.
printf 'short-lived' | s3 cp --only-show-errors --cache-control max-age=1 - s3://e2e-cdn/short
[ "$(cache_status "$CDN/e2e-cdn/short")" = MISS ]
sleep 2
[ "$(cache_status "$CDN/e2e-cdn/short")" = REVALIDATED ]
[ "$(cat "$WORK/cdn-body")" = short-lived ]
# Sherd answers the conditional itself.
ETAG=$(curl -fsS -D - -o /dev/null "$EP/e2e-cdn/short" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $ETAG" "$EP/e2e-cdn/short")" = 304 ]
# A changed object is fetched again once expired.
sleep 1
printf 'changed' | s3 cp --only-show-errors --cache-control max-age=1 - s3://e2e-cdn/short
sleep 2
[ "$(cache_status "$CDN/e2e-cdn/short")" = EXPIRED ]
[ "$(cat "$WORK/cdn-body")" = changed ]
# Cache-Control: no-store on the object keeps it out of the cache.
printf 'private' | s3 cp --only-show-errors --cache-control no-store - s3://e2e-cdn/nostore
[ "$(cache_status "$CDN/e2e-cdn/nostore")" = MISS ]
[ "$(cache_status "$CDN/e2e-cdn/nostore")" = MISS ]
kill $NGINX_PID

step "CORS from a real browser (headless Chromium): cross-origin fetch() GET and presigned PUT"
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ]; then
	[ "${E2E_REQUIRE_BROWSER:-0}" = 1 ] && { echo "e2e: chromium is required" >&2; exit 1; }
	echo "e2e: SKIPPED: chromium not installed (apt-get install chromium; .ci/run does)"
else
	PP=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	ORIGIN="http://127.0.0.1:$PP"
	mkdir -p "$WORK/site"
	printf 'hello-cors' | s3 cp --only-show-errors - s3://e2e-cdn/cors.txt
	PUTURL=$(bin/sherdctl presign s3://e2e-cdn/from-browser.txt --method PUT --expires 5m --endpoint "$EP")
	cat >"$WORK/site/page.html" <<HTML
<!doctype html><html><body><pre id="get">pending</pre><pre id="put">pending</pre><script>
const show = (id, v) => { document.getElementById(id).textContent = v; };
fetch("$EP/e2e-cdn/cors.txt")
  .then(r => r.text().then(t => show("get", "GET " + r.status + " " + t + " etag=" + r.headers.get("ETag"))))
  .catch(e => show("get", "GET failed: " + e));
fetch("$PUTURL", {method: "PUT", body: "uploaded by a browser", headers: {"Content-Type": "text/plain"}})
  .then(r => show("put", "PUT " + r.status))
  .catch(e => show("put", "PUT failed: " + e));
</script></body></html>
HTML
	(cd "$WORK/site" && exec "$PYTHON" -m http.server "$PP" --bind 127.0.0.1 >/dev/null 2>&1) &
	SITE_PID=$!
	for _ in $(seq 1 50); do curl -s -o /dev/null "$ORIGIN/page.html" && break; sleep 0.1; done
	browse() { "$BROWSER" --headless --no-sandbox --disable-gpu --user-data-dir="$WORK/chromium" --virtual-time-budget=10000 --dump-dom "$ORIGIN/page.html" 2>/dev/null; }
	# Without a CORS rule the browser refuses the cross-origin answers.
	DOM=$(browse)
	echo "$DOM" | grep -q 'GET failed' || { echo "$DOM"; exit 1; }
	echo "$DOM" | grep -q 'PUT failed' || { echo "$DOM"; exit 1; }
	cat >"$WORK/cors.json" <<JSON
{"CORSRules": [{"AllowedOrigins": ["$ORIGIN"], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 60}]}
JSON
	aws --endpoint-url "$EP" s3api put-bucket-cors --bucket e2e-cdn --cors-configuration "file://$WORK/cors.json"
	DOM=$(browse)
	echo "$DOM" | grep -q 'GET 200 hello-cors etag="[0-9a-f]*"' || { echo "$DOM"; exit 1; }
	echo "$DOM" | grep -q 'PUT 200' || { echo "$DOM"; exit 1; }
	[ "$(aws --endpoint-url "$EP" s3 cp s3://e2e-cdn/from-browser.txt -)" = "uploaded by a browser" ]
	kill $SITE_PID
fi

step "boto3 with default settings"
"$PYTHON" test/e2e/boto3_e2e.py

# More clients. Each is required when E2E_REQUIRE_CLIENTS=1 (.ci/run
# installs them), skipped with a note otherwise.
have() {
	command -v "$1" >/dev/null && return 0
	[ "${E2E_REQUIRE_CLIENTS:-0}" = 1 ] && { echo "e2e: $1 is required" >&2; exit 1; }
	echo "e2e: SKIPPED: $1 not installed (.ci/run installs it)"
	return 1
}

step "rclone: copy, check, sync, ls, multipart, delete"
if have rclone; then
	export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_SHERD_TYPE=s3 RCLONE_CONFIG_SHERD_PROVIDER=Other \
		RCLONE_CONFIG_SHERD_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_SHERD_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
		RCLONE_CONFIG_SHERD_ENDPOINT=$EP RCLONE_CONFIG_SHERD_REGION=us-east-1
	# (aws-sdk-go v1 in rclone refuses AWS_CA_BUNDLE with its own transport; the endpoint is plain HTTP)
	rc() { env -u AWS_CA_BUNDLE rclone -q --s3-upload-cutoff 5M --s3-chunk-size 5M "$@"; }
	rc mkdir sherd:e2e-rclone
	rc copy "$WORK/tree" sherd:e2e-rclone/tree
	rc check "$WORK/tree" sherd:e2e-rclone/tree # sizes and MD5s
	rc copyto "$WORK/up/multipart" sherd:e2e-rclone/big # 25 MiB in 5 MiB parts
	rc copyto sherd:e2e-rclone/big "$WORK/rclone-big"
	cmp "$WORK/up/multipart" "$WORK/rclone-big"
	rc sync sherd:e2e-rclone/tree "$WORK/rclone-back"
	diff -r "$WORK/tree" "$WORK/rclone-back"
	# sync deletes what the source no longer has
	rm "$WORK/tree/a/f1"
	rc sync "$WORK/tree" sherd:e2e-rclone/tree
	[ "$(rc ls sherd:e2e-rclone/tree | wc -l)" = 24 ]
	rc check "$WORK/tree" sherd:e2e-rclone/tree
	rc delete sherd:e2e-rclone
	rc rmdir sherd:e2e-rclone
	! rc lsd sherd: | grep -q e2e-rclone
fi

step "s3cmd: mb, put (multipart), get, sync, ls, del, rb"
if have s3cmd; then
	cat >"$WORK/s3cfg" <<S3CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = 127.0.0.1:$PORT
host_bucket = 127.0.0.1:$PORT
use_https = False
signature_v2 = False
bucket_location = us-east-1
multipart_chunk_size_mb = 5
S3CFG
	sc() { s3cmd -c "$WORK/s3cfg" --no-progress -q "$@"; }
	sc mb s3://e2e-s3cmd
	sc put "$WORK/up/multipart" s3://e2e-s3cmd/big
	sc get s3://e2e-s3cmd/big "$WORK/s3cmd-big"
	cmp "$WORK/up/multipart" "$WORK/s3cmd-big"
	sc put "$WORK/up/one" s3://e2e-s3cmd/one
	sc get s3://e2e-s3cmd/one "$WORK/s3cmd-one"
	cmp "$WORK/up/one" "$WORK/s3cmd-one"
	sc sync "$WORK/tree/" s3://e2e-s3cmd/tree/
	sc sync s3://e2e-s3cmd/tree/ "$WORK/s3cmd-back/"
	diff -r "$WORK/tree" "$WORK/s3cmd-back"
	[ "$(s3cmd -c "$WORK/s3cfg" ls -r s3://e2e-s3cmd | wc -l)" = 26 ]
	sc del --recursive --force s3://e2e-s3cmd
	sc rb s3://e2e-s3cmd
fi

step "aws CLI v2 (Debian's awscli): cp up and down, multipart, s3api versions and tagging"
AWS2=/usr/bin/aws
if [ -x "$AWS2" ] && "$AWS2" --version 2>&1 | grep -q '^aws-cli/2'; then
	a2() { "$AWS2" --endpoint-url "$EP" "$@"; }
	a2 s3 mb s3://e2e-cliv2 >/dev/null
	a2 s3api put-bucket-versioning --bucket e2e-cliv2 --versioning-configuration Status=Enabled
	for f in empty seven-mib multipart; do
		a2 s3 cp --only-show-errors "$WORK/up/$f" "s3://e2e-cliv2/$f"
		a2 s3 cp --only-show-errors "s3://e2e-cliv2/$f" "$WORK/cliv2-$f"
		cmp "$WORK/up/$f" "$WORK/cliv2-$f"
	done
	a2 s3 cp --only-show-errors "$WORK/up/one" s3://e2e-cliv2/seven-mib # a second version
	[ "$(a2 s3api list-object-versions --bucket e2e-cliv2 --prefix seven-mib --query 'length(Versions)')" = 2 ]
	a2 s3api put-object-tagging --bucket e2e-cliv2 --key empty --tagging 'TagSet=[{Key=k,Value=v}]' >/dev/null
	[ "$(a2 s3api get-object-tagging --bucket e2e-cliv2 --key empty --query 'TagSet[0].Value' --output text)" = v ]
	a2 s3api list-object-versions --bucket e2e-cliv2 --output json \
		--query '{Objects: [Versions[].{Key: Key, VersionId: VersionId}, DeleteMarkers[].{Key: Key, VersionId: VersionId}][] | [?Key]}' >"$WORK/cliv2-versions.json"
	a2 s3api delete-objects --bucket e2e-cliv2 --delete "file://$WORK/cliv2-versions.json" >/dev/null
	a2 s3 rb s3://e2e-cliv2 >/dev/null
else
	[ "${E2E_REQUIRE_CLIENTS:-0}" = 1 ] && { echo "e2e: the aws CLI v2 (/usr/bin/aws) is required" >&2; exit 1; }
	echo "e2e: SKIPPED: the aws CLI v2 is not at /usr/bin/aws (apt-get install awscli; .ci/run does)"
fi

step "AWS SDK for JavaScript v3 (client-s3, lib-storage) with its default checksums"
if have node && have npm; then
	(cd test/e2e/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	(cd test/e2e/js && node --no-warnings sdk_e2e.mjs)
fi

echo "e2e: all passed"
