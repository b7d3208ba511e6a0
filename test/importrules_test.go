// Package test holds Sherd's cluster harness and end-to-end tests; it also enforces the package dependency rules of DESIGN.md §2.
package test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sherdstore/sherd"

// allowed lists, for every package of the module, the module packages it may
// import (non-test code). A new package must be added here, which is the
// point: the dependency direction of DESIGN.md §2 is decided, not grown.
var allowed = map[string][]string{
	"erasure":             {},
	"internal/merkle":     {},
	"internal/etcdserver": {},
	"internal/reqid":      {},
	"internal/telemetry":  {},
	"metadata":            {},
	"gateway/s3":          {},
	"metadata/placement":  {},
	"metadata/etcd":       {"metadata"},
	// Lifecycle rules: decisions and their worker, on the metadata store only.
	"lifecycle":               {"metadata"},
	"storagenode":             {"erasure", "internal/merkle", "internal/reqid"},
	"storagenode/client":      {"storagenode", "internal/merkle", "internal/reqid"},
	"storagenode/storetest":   {"storagenode", "erasure", "internal/merkle"},
	"storagenode/crashfs":     {"storagenode"},
	"storagenode/antientropy": {"storagenode", "storagenode/client", "metadata", "metadata/placement", "erasure", "internal/merkle"},
	// The data plane: never the gateway.
	"cluster": {"erasure", "metadata", "metadata/placement", "storagenode", "storagenode/client", "internal/merkle"},
	// The gateway speaks S3 and leaves shard I/O to the data plane.
	"gateway": {"cluster", "gateway/s3", "metadata", "metadata/placement", "erasure", "internal/reqid"},
	// Anti-entropy's driver: on the data plane, never the gateway.
	"repair":          {"cluster", "metadata", "storagenode", "erasure", "internal/merkle"},
	"internal/daemon": {"repair", "lifecycle", "cluster", "gateway", "gateway/s3", "storagenode", "storagenode/client", "storagenode/antientropy", "metadata", "metadata/etcd", "internal/etcdserver", "internal/telemetry", "internal/merkle", "erasure"},
	"test":            {"*"},
	"cmd/sherd":       {"*"},
	"cmd/sherdctl":    {"*"},
	"cmd/sherd-bench": {"*"},
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		rules, ok := allowed[pkg]
		if !ok {
			t.Errorf("package %q is not in the import rules table (test/importrules_test.go)", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if strings.HasPrefix(dep, "cmd/") || dep == "test" || strings.HasPrefix(dep, "test/") {
				t.Errorf("%s imports %s: cmd/* and test/* are imported by nothing", pkg, dep)
				continue
			}
			if !slices.Contains(rules, "*") && !slices.Contains(rules, dep) {
				t.Errorf("%s imports %s: not allowed by DESIGN.md §2 (see the table in this file)", pkg, dep)
			}
		}
	}
}
