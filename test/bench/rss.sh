#!/usr/bin/env bash
# Peak RSS of a gateway process during one 2 GiB PUT and one 2 GiB GET.
# Runs a real multi-process cluster: Debian's etcd, 6 `sherd node`, one
# `sherd gateway`; the object goes up and down with curl through presigned
# URLs (a single PUT, no multipart). Prints VmHWM of the gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${SIZE_MIB:-2048}
go build -o bin/ ./cmd/sherd
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EC=$(port) EP=$(port) GP=$(port)
/usr/bin/etcd --name e --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
	--listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" --initial-cluster "e=http://127.0.0.1:$EP" >"$W/etcd.log" 2>&1 &
sleep 2
export SHERD_CLUSTER_KEY=rss-measurement-cluster-key SHERD_ROOT_USER=rss SHERD_ROOT_PASSWORD=rss-secret-key
for i in 1 2 3 4 5 6; do bin/sherd node --etcd "http://127.0.0.1:$EC" --data "$W/n$i" --id "node-$i" >"$W/n$i.out" 2>&1 & done
sleep 2
bin/sherd gateway --etcd "http://127.0.0.1:$EC" --address "127.0.0.1:$GP" >"$W/gw.out" 2>&1 &
GW=$!
sleep 2
export AWS_ACCESS_KEY_ID=rss AWS_SECRET_ACCESS_KEY=rss-secret-key AWS_DEFAULT_REGION=us-east-1
aws --endpoint-url "http://127.0.0.1:$GP" s3 mb s3://rss-bucket >/dev/null
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$W/obj"
hwm() { grep VmHWM "/proc/$GW/status" | awk '{print $2/1024 " MiB"}'; }
echo "gateway VmHWM at start: $(hwm)"
PUT=$(python3 -c "
import boto3; from botocore.config import Config
c=boto3.client('s3',endpoint_url='http://127.0.0.1:$GP',config=Config(signature_version='s3v4'))
print(c.generate_presigned_url('put_object',Params={'Bucket':'rss-bucket','Key':'obj'},ExpiresIn=600))")
t0=$(date +%s.%N)
curl -fsS -T "$W/obj" "$PUT" -o /dev/null
t1=$(date +%s.%N)
echo "after ${SIZE_MIB} MiB PUT ($(python3 -c "print(round($SIZE_MIB/($t1-$t0)))") MiB/s): gateway VmHWM $(hwm)"
t0=$(date +%s.%N)
aws --endpoint-url "http://127.0.0.1:$GP" s3 presign s3://rss-bucket/obj | xargs curl -fsS -o "$W/back"
t1=$(date +%s.%N)
echo "after ${SIZE_MIB} MiB GET ($(python3 -c "print(round($SIZE_MIB/($t1-$t0)))") MiB/s): gateway VmHWM $(hwm)"
cmp "$W/obj" "$W/back" && echo "bytes identical"
