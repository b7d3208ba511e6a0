# Sherd — see README.md.
GO ?= go
# Concurrent packages run under the race detector (DESIGN.md §2).
RACE_PKGS := ./storagenode/... ./metadata/...

.PHONY: test run build vet bench fuzz

test: vet
	$(GO) test -race $(RACE_PKGS)
	$(GO) test $$($(GO) list ./... | grep -v -e /storagenode -e /metadata)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

build:
	$(GO) build -o bin/ ./cmd/...

run:
	@if [ -d cmd/sherd ]; then $(GO) run ./cmd/sherd server --data ./data; \
	else echo "make run: 'sherd server' (the S3 gateway, issue #3) is not built yet; the foundations are tested by 'make test'." >&2; exit 2; fi

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./erasure/

# Short fuzz runs of every parser; FUZZTIME=5m for longer.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzCopyRecords -fuzztime $(FUZZTIME) ./erasure/
	for f in FuzzParseAuthHeader FuzzChunkedBody FuzzCanonicalQuery; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./gateway/s3/ || exit 1; done
