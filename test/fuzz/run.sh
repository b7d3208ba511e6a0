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
	if ! out=$(go test -run '^$' -fuzz "^${fz}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
		echo "$out"
		exit 1
	fi
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
