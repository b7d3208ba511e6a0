#!/usr/bin/env bash
# Runs every parser's fuzzer for FUZZTIME (default 20s) each.
# With KEEP_CORPUS=1 the corpus each run built (in the Go cache) is copied
# into the package's testdata/fuzz/<Fuzzer>/, so every `go test` replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZTIME="${FUZZTIME:-20s}"
FUZZERS=(
	./erasure/:FuzzCopyRecords
	./erasure/:FuzzAppendRecords
	./gateway/s3/:FuzzParseAuthHeader
	./gateway/s3/:FuzzChunkedBody
	./gateway/s3/:FuzzCanonicalQuery
	./gateway/s3/:FuzzParseRange
	./gateway/s3/:FuzzDecodeXML
	./gateway/s3/:FuzzVerifyV2
	./gateway/s3/:FuzzParseCORS
	./gateway/s3/:FuzzParsePostPolicy
	./gateway/:FuzzCopySource
	./gateway/:FuzzParseCopyRange
	./notify/:FuzzParseConfig
	./metadata/:FuzzRawMap
	./storagenode/:FuzzParseShardID
	./storagenode/:FuzzParseRange
)
cache="$(go env GOCACHE)/fuzz"
for entry in "${FUZZERS[@]}"; do
	pkg="${entry%%:*}"
	fz="${entry##*:}"
	echo "== $fz ($pkg) for $FUZZTIME"
	# The whole output when a run fails (the failing input and its error),
	# the last lines otherwise.
	# A failure is a finding when Go wrote the failing input to
	# testdata/fuzz/<Fuzzer>/. Go 1.26's fuzz coordinator can also fail a
	# run at the -fuzztime boundary with a bare "context deadline
	# exceeded" and no input (golang/go#75804, fixed in Go 1.27): that
	# run is tried again, and a second such ending is reported, not failed.
	corpus="${pkg%/}/testdata/fuzz/$fz"
	for try in 1 2; do
		before=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
		if out=$(go test -run '^$' -fuzz "^${fz}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
			break
		fi
		after=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
		if [ "$after" -gt "$before" ] || ! grep -q '^    context deadline exceeded$' <<<"$out"; then
			echo "$out"
			exit 1
		fi
		echo "   $fz: the fuzz coordinator's deadline race (golang/go#75804), no failing input written (try $try)"
	done
	echo "$out" | tail -3
	if [ "${KEEP_CORPUS:-}" = 1 ]; then
		src="$cache/github.com/sherdstore/sherd/${pkg#./}"
		src="${src%/}/$fz"
		dst="${pkg%/}/testdata/fuzz/$fz"
		if [ -d "$src" ]; then
			mkdir -p "$dst"
			cp -n "$src"/* "$dst"/ 2>/dev/null || true
			echo "   corpus: $(ls "$dst" | wc -l) inputs in $dst"
		fi
	fi
done
