#!/usr/bin/env bash
# Side-by-side benchmark: Sherd against MinIO on this machine, the same
# workloads interleaved, ROUNDS rounds; prints medians and ratios, with the
# servers' CPU seconds per GiB and per operation (docs/performance.md).
#
#   make bench-compare                    sherd server vs MinIO, one process each
#   MODE=cluster make bench-compare       etcd + 6 sherd node + sherd gateway vs
#                                         MinIO distributed (6 processes, 1 drive each;
#                                         root: MinIO refuses 127.0.0.1 endpoints, so they
#                                         listen on 10.213.0.1, a local address on a veth
#                                         pair made here and removed at exit)
#   ROUNDS=3 DURATION=10s WORKLOADS="put:64MiB:4 get:4KiB:32" PROFILE=1 …
#   SHERD=/path/to/sherd …                another build of sherd (e.g. an older commit)
#
# PROFILE=1 saves CPU, allocation, block and mutex profiles of the Sherd
# gateway process (sherd server: the only process) for each workload of
# the last round under $OUT/profiles (go tool pprof -top FILE).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
MODE=${MODE:-server}
WORKLOADS=${WORKLOADS:-"put:64MiB:4 get:64MiB:4 put:1MiB:16 get:1MiB:16 put:4KiB:32 get:4KiB:32 mixed:1MiB:16"}
OUT=${OUT:-$ROOT/bench-out}
mkdir -p "$OUT"
RESULTS=$OUT/results-$(date +%Y%m%dT%H%M%S).jsonl

go build -o bin/ ./cmd/sherd ./cmd/sherd-bench
SHERD=${SHERD:-bin/sherd}
PPROF_FLAG=()
MINIO=$(command -v minio || true)
[ -n "$MINIO" ] || MINIO=$(go env GOPATH)/bin/minio
if [ ! -x "$MINIO" ]; then
	echo "installing MinIO (go install github.com/minio/minio@latest)…"
	go install github.com/minio/minio@latest
fi
ETCD=$(command -v etcd || echo /usr/bin/etcd)

W=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}" sherd-bench.XXXXXX)
cleanup() {
	kill $(jobs -p) 2>/dev/null || true
	wait 2>/dev/null || true
	[ "$MODE" != cluster ] || ip link del sherdb0 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { # url: until it answers 200, at most 60 s
	for _ in $(seq 600); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "timed out waiting for $1" >&2
	exit 1
}

# MINIO_CI_CD=1: MinIO refuses drive directories on the root disk without it.
USER_KEY=benchadmin SECRET=benchadmin-secret-key
SP=$(port) MP=$(port) PPROF=$(port)
[ "${PROFILE:-}" = 1 ] && PPROF_FLAG=(--pprof "127.0.0.1:$PPROF")
SHERD_PIDS="" MINIO_PIDS=""
if [ "$MODE" = server ]; then
	SHERD_ROOT_USER=$USER_KEY SHERD_ROOT_PASSWORD=$SECRET "$SHERD" server --data "$W/sherd" --address "127.0.0.1:$SP" \
		"${PPROF_FLAG[@]}" >"$W/sherd.log" 2>&1 &
	SHERD_PIDS=$!
	MINIO_ROOT_USER=$USER_KEY MINIO_ROOT_PASSWORD=$SECRET MINIO_STORAGE_CLASS_STANDARD=EC:2 MINIO_BROWSER=off \
		MINIO_CI_CD=1 "$MINIO" server --quiet --address "127.0.0.1:$MP" "$W/minio/d{1...6}" >"$W/minio.log" 2>&1 &
	MINIO_PIDS=$!
elif [ "$MODE" = cluster ]; then
	EC=$(port) EP=$(port)
	"$ETCD" --name e --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
		--listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
		--initial-cluster "e=http://127.0.0.1:$EP" >"$W/etcd.log" 2>&1 &
	SHERD_PIDS=$!
	waitfor "http://127.0.0.1:$EC/health"
	export SHERD_CLUSTER_KEY=bench-cluster-key-0123456789
	for i in 1 2 3 4 5 6; do
		"$SHERD" node --etcd "http://127.0.0.1:$EC" --data "$W/n$i" --id "node-$i" >"$W/n$i.log" 2>&1 &
		SHERD_PIDS="$SHERD_PIDS,$!"
	done
	SHERD_ROOT_USER=$USER_KEY SHERD_ROOT_PASSWORD=$SECRET "$SHERD" gateway --etcd "http://127.0.0.1:$EC" \
		--address "127.0.0.1:$SP" "${PPROF_FLAG[@]}" >"$W/gw.log" 2>&1 &
	SHERD_PIDS="$SHERD_PIDS,$!"
	# MinIO's distributed mode will not use loopback addresses: give it a
	# local one (traffic stays in this machine, as over loopback).
	MHOST=10.213.0.1
	ip link del sherdb0 2>/dev/null || true
	ip link add sherdb0 type veth peer name sherdb1
	ip addr add "$MHOST/32" dev sherdb0
	ip link set sherdb0 up
	ip link set sherdb1 up
	MPORTS=()
	for i in 1 2 3 4 5 6; do MPORTS+=("$(port)"); done
	ENDPOINTS=""
	for i in 1 2 3 4 5 6; do ENDPOINTS="$ENDPOINTS http://$MHOST:${MPORTS[$((i-1))]}$W/minio$i"; done
	for i in 1 2 3 4 5 6; do
		MINIO_ROOT_USER=$USER_KEY MINIO_ROOT_PASSWORD=$SECRET MINIO_STORAGE_CLASS_STANDARD=EC:2 MINIO_BROWSER=off \
			MINIO_CI_CD=1 "$MINIO" server --quiet --address "$MHOST:${MPORTS[$((i-1))]}" $ENDPOINTS >"$W/minio$i.log" 2>&1 &
		MINIO_PIDS="$MINIO_PIDS${MINIO_PIDS:+,}$!"
	done
	MP=${MPORTS[0]}
else
	echo "MODE must be server or cluster" >&2
	exit 2
fi
waitfor "http://127.0.0.1:$SP/_sherd/ready"
MHOST=${MHOST:-127.0.0.1}
waitfor "http://$MHOST:$MP/minio/health/cluster"
echo "sherd (pids $SHERD_PIDS) on 127.0.0.1:$SP, MinIO (pids $MINIO_PIDS) on $MHOST:$MP; results in $RESULTS"

export AWS_ACCESS_KEY_ID=$USER_KEY AWS_SECRET_ACCESS_KEY=$SECRET
bench() { # label host:port pids workload size conc
	bin/sherd-bench --endpoint "$2" --label "$1" --cpu-pids "$3" --workload "$4" --size "$5" \
		--concurrency "$6" --duration "$DURATION" --json | tee -a "$RESULTS"
}
profile() { # workload name: profiles of the Sherd gateway while the workload runs
	local d="$OUT/profiles/$MODE" secs=${DURATION%s}
	mkdir -p "$d"
	curl -fsS -o "$d/$1.cpu.pb.gz" "http://127.0.0.1:$PPROF/debug/pprof/profile?seconds=$((secs > 4 ? secs - 2 : 2))" &
	local cpu=$!
	for p in allocs block mutex; do curl -fsS -o "$d/$1.$p.0.pb.gz" "http://127.0.0.1:$PPROF/debug/pprof/$p"; done
	wait $cpu
	for p in allocs block mutex; do curl -fsS -o "$d/$1.$p.pb.gz" "http://127.0.0.1:$PPROF/debug/pprof/$p"; done
}
# The objects GETs read are written first, not measured.
for w in $WORKLOADS; do
	IFS=: read -r kind size conc <<<"$w"
	[ "$kind" = put ] && continue
	for ep in "127.0.0.1:$SP" "$MHOST:$MP"; do
		bin/sherd-bench --endpoint "$ep" --workload "$kind" --size "$size" --concurrency "$conc" --prepare
	done
done
for r in $(seq "$ROUNDS"); do
	for w in $WORKLOADS; do
		IFS=: read -r kind size conc <<<"$w"
		if [ $((r % 2)) = 1 ]; then order="sherd minio"; else order="minio sherd"; fi
		for t in $order; do
			if [ "$t" = sherd ]; then
				prof=""
				if [ "${PROFILE:-}" = 1 ] && [ "$r" = "$ROUNDS" ]; then
					(sleep 1; profile "$kind-$size") &
					prof=$!
				fi
				bench sherd "127.0.0.1:$SP" "$SHERD_PIDS" "$kind" "$size" "$conc"
				[ -z "$prof" ] || wait "$prof"
			else
				bench minio "$MHOST:$MP" "$MINIO_PIDS" "$kind" "$size" "$conc"
			fi
		done
	done
done
echo
bin/sherd-bench report "$RESULTS" | tee "${RESULTS%.jsonl}.md"
