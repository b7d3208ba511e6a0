# Sherd — see README.md.
GO ?= go
# Concurrent packages run under the race detector (DESIGN.md §2); the
# integration tests in test/ drive the gateway, daemon, nodes and etcd store.
RACE_PKGS := ./shard/... ./storagenode/... ./metadata/... ./cluster/... ./repair/... ./gateway ./notify ./internal/clustertls ./internal/daemon ./test/...

.PHONY: test run build vet bench bench-compare fuzz e2e rules faults

# The slowest test (10,000 part uploads, ~2 min) runs once, without -race.
SLOW_TESTS := TestTenThousandParts

# test/ runs ~10 minutes under -race on 2 cores: past go test's default
# timeout, which would cut it.
test: vet
	$(GO) test -race -timeout 30m -skip '$(SLOW_TESTS)' $(RACE_PKGS)
	$(GO) test -run '$(SLOW_TESTS)' ./test/
	$(GO) test $$($(GO) list ./... | grep -v -e /shard -e /storagenode -e /metadata -e /cluster -e /repair -e '/gateway$$' -e /notify -e /internal/daemon -e /test)

# staticcheck is a tool dependency in go.mod (go tool: built from the
# module proxy, nothing to install).
vet:
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

build:
	$(GO) build -o bin/ ./cmd/...

run:
	$(GO) run ./cmd/sherd server --data ./data

# End-to-end: the built binary driven by the aws CLI, boto3 and curl.
e2e:
	bash test/e2e/run.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./erasure/

# Short fuzz runs of every parser; FUZZTIME=5m for longer, KEEP_CORPUS=1
# to keep what they found in testdata/fuzz/ (see docs/reliability.md).
FUZZTIME ?= 20s
fuzz:
	FUZZTIME=$(FUZZTIME) bash test/fuzz/run.sh

# The Prometheus alert rules (promtool: Debian's prometheus package).
rules:
	promtool check rules ops/prometheus/sherd-alerts.yml
	promtool test rules ops/prometheus/sherd-alerts.test.yml

# The multi-host fault lab (network namespaces; root, iproute2, nginx;
# etcd is built from its module): docs/reliability.md. FAULTS_SHORT=1 for CI's shorter run.
faults:
	SHERD_FAULTS=1 SHERD_FAULTS_SHORT=$(FAULTS_SHORT) $(GO) test -run '^TestFaults$$' -v -count=1 -timeout 45m ./test/

# Sherd against MinIO on this machine (installs MinIO if missing):
# test/bench/compare.sh, docs/performance.md. MODE=cluster for the
# multi-process cluster; ROUNDS, DURATION, WORKLOADS, PROFILE=1.
bench-compare:
	bash test/bench/compare.sh
