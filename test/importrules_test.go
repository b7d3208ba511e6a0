// Package test holds Sherd's cluster harness and end-to-end tests; it also enforces the package dependency rules of DESIGN.md §2.
package test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sherdstore/sherd"

// allowed lists, for every package of the module, exactly the module
// packages it imports (non-test code): an import not listed fails, and so
// does a listed one no longer imported. A new package or import must be
// added here, which is the point: the dependency direction of DESIGN.md
// §2 is decided, not grown.
var allowed = map[string][]string{
	"erasure":             {},
	"internal/merkle":     {},
	"internal/etcdserver": {},
	"internal/reqid":      {},
	"internal/telemetry":  {},
	"metadata":            {},
	"gateway/s3":          {},
	"metadata/placement":  {},
	"metadata/etcd":       {"metadata", "internal/backoff"},
	// The one exponential backoff (pure).
	"internal/backoff": {},
	// The shard contract: ids, Info, Store, errors. A leaf.
	"shard": {"internal/merkle"},
	// Its conformance suite, the in-memory store and the fault injector.
	"shard/storetest": {"shard", "erasure", "internal/merkle"},
	"shard/memstore":  {"shard", "erasure", "internal/merkle"},
	"shard/faulty":    {"shard", "internal/merkle"},
	// Lifecycle rules: decisions and their worker, on the metadata store only.
	"lifecycle": {"metadata"},
	// Bucket notifications: configuration, events, delivery; on the
	// metadata store only (the gateway and sherdctl both use it).
	"notify": {"metadata", "internal/backoff"},
	// The cluster CA and the node HTTP client: standard library only.
	"internal/clustertls": {},
	"storagenode":         {"shard", "storagenode/wire", "erasure", "internal/merkle", "internal/reqid"},
	// The node API's wire protocol, shared by the node and its client.
	"storagenode/wire":    {"shard", "internal/merkle"},
	"storagenode/client":  {"shard", "storagenode/wire", "internal/merkle", "internal/reqid"},
	"storagenode/crashfs": {"storagenode"},
	// The data plane: never the gateway, never a disk store.
	"cluster": {"shard", "erasure", "metadata", "metadata/placement", "internal/merkle", "internal/backoff"},
	// The gateway speaks S3 and leaves shard I/O to the data plane.
	"gateway": {"cluster", "gateway/s3", "metadata", "metadata/placement", "erasure", "internal/reqid", "notify"},
	// Anti-entropy's driver: on the data plane, never the gateway.
	"repair":          {"cluster", "shard", "metadata", "erasure", "internal/merkle", "internal/backoff"},
	"internal/daemon": {"repair", "lifecycle", "cluster", "gateway", "notify", "shard", "storagenode", "storagenode/client", "metadata", "metadata/etcd", "internal/clustertls", "internal/etcdserver", "internal/telemetry", "internal/merkle", "erasure"},
	"test":            {"*"},
	"cmd/sherd":       {"*"},
	"cmd/sherdctl":    {"*"},
	"cmd/sherd-bench": {"*"},
}

// testAllowed lists what a package's tests import of the module beyond
// allowed: real parts (an etcd, a disk store) and the conformance suites,
// never a higher layer. Exact, as allowed.
var testAllowed = map[string][]string{
	"cluster":            {"internal/etcdserver", "metadata/etcd", "storagenode"},
	"gateway":            {"internal/etcdserver", "metadata/etcd", "shard", "storagenode"},
	"internal/daemon":    {"shard/storetest", "storagenode/wire"},
	"lifecycle":          {"internal/etcdserver", "metadata/etcd"},
	"metadata/etcd":      {"internal/etcdserver"},
	"notify":             {"internal/etcdserver", "metadata/etcd"},
	"storagenode":        {"storagenode/client", "storagenode/crashfs", "shard/storetest"},
	"storagenode/client": {"shard/storetest", "storagenode"},
	"shard/memstore":     {"shard/storetest"},
	"shard/faulty":       {"shard/memstore", "shard/storetest"},
}

// forbidden lists dependencies (of the module or not) a package must not
// link, directly or through others (non-test code).
var forbidden = map[string][]string{
	"cluster": {"go.etcd.io/bbolt", module + "/storagenode"},
	"gateway": {"go.etcd.io/bbolt", module + "/storagenode", "go.etcd.io/etcd/server/v3"},
	"repair":  {"go.etcd.io/bbolt", module + "/storagenode", "go.etcd.io/etcd/server/v3"},
	"shard":   {"go.etcd.io/bbolt"},
	"notify":  {module + "/gateway", "go.etcd.io/etcd/server/v3"},
	// The operator CLI: no etcd server, no gateway, no daemon wiring, no
	// disk store.
	"cmd/sherdctl": {"go.etcd.io/etcd/server/v3", module + "/gateway", module + "/internal/daemon", "go.etcd.io/bbolt"},
	// The node client: what gateways and sherdctl link to reach nodes.
	"storagenode/client": {"go.etcd.io/bbolt"},
}

// linkedOnlyBy lists, for the heavy dependencies, the only packages that
// may link them at all (directly or not): the disk store's bbolt and the
// etcd server stay out of everything else.
var linkedOnlyBy = map[string][]string{
	"go.etcd.io/bbolt":          {"storagenode", "storagenode/crashfs", "internal/etcdserver", "internal/daemon", "cmd/sherd"},
	"go.etcd.io/etcd/server/v3": {"internal/etcdserver", "internal/daemon", "cmd/sherd"},
}

type listed struct {
	pkg                    string
	imports, tests, linked []string
}

func listModule(t *testing.T) []listed {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .TestImports \" \"}} {{join .XTestImports \" \"}}|{{join .Deps \" \"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var all []listed
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			t.Fatalf("go list line %q", line)
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		all = append(all, listed{pkg: pkg, imports: own(f[1]), tests: own(f[2]), linked: strings.Fields(f[3])})
	}
	return all
}

// own returns the module packages among the import paths in s, relative.
func own(s string) []string {
	var out []string
	for _, imp := range strings.Fields(s) {
		if strings.HasPrefix(imp, module+"/") && !slices.Contains(out, strings.TrimPrefix(imp, module+"/")) {
			out = append(out, strings.TrimPrefix(imp, module+"/"))
		}
	}
	slices.Sort(out)
	return out
}

func TestImportRules(t *testing.T) {
	pkgs := listModule(t)
	for _, p := range pkgs {
		rules, ok := allowed[p.pkg]
		if !ok {
			t.Errorf("package %q is not in the import rules table (test/importrules_test.go)", p.pkg)
			continue
		}
		check := func(deps []string, rules []string, what string) {
			for _, dep := range deps {
				if dep == p.pkg {
					continue
				}
				if strings.HasPrefix(dep, "cmd/") || dep == "test" || strings.HasPrefix(dep, "test/") {
					t.Errorf("%s%s imports %s: cmd/* and test/* are imported by nothing", p.pkg, what, dep)
					continue
				}
				if !slices.Contains(rules, "*") && !slices.Contains(rules, dep) {
					t.Errorf("%s%s imports %s: not allowed by DESIGN.md §2 (see the table in this file)", p.pkg, what, dep)
				}
			}
		}
		check(p.imports, rules, "")
		if !slices.Contains(rules, "*") {
			for _, r := range rules {
				if !slices.Contains(p.imports, r) {
					t.Errorf("%s may import %s but does not: drop it from the table (allowances are exact)", p.pkg, r)
				}
			}
			extra := testAllowed[p.pkg]
			check(p.tests, append(slices.Clone(rules), extra...), "'s tests")
			for _, r := range extra {
				if !slices.Contains(p.tests, r) || slices.Contains(p.imports, r) {
					t.Errorf("%s's tests may import %s but do not (or the package does): drop it from testAllowed", p.pkg, r)
				}
			}
		}
		for _, bad := range forbidden[p.pkg] {
			for _, dep := range p.linked {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s links %s: forbidden (DESIGN.md §2)", p.pkg, dep)
					break
				}
			}
		}
	}
	listedPkgs := map[string]bool{}
	for _, p := range pkgs {
		listedPkgs[p.pkg] = true
		for heavy, only := range linkedOnlyBy {
			if slices.Contains(only, p.pkg) {
				continue
			}
			for _, dep := range p.linked {
				if dep == heavy || strings.HasPrefix(dep, heavy+"/") {
					t.Errorf("%s links %s: only %v may (test/importrules_test.go)", p.pkg, dep, only)
					break
				}
			}
		}
	}
	for _, table := range []map[string][]string{allowed, testAllowed, forbidden} {
		for pkg := range table {
			if !listedPkgs[pkg] {
				t.Errorf("the import rules name %s, which is no package of the module: drop it", pkg)
			}
		}
	}
	for heavy, only := range linkedOnlyBy {
		for _, pkg := range only {
			if !listedPkgs[pkg] {
				t.Errorf("linkedOnlyBy[%s] names %s, which is no package of the module: drop it", heavy, pkg)
			}
		}
	}
	for pkg := range testAllowed {
		if _, ok := allowed[pkg]; !ok {
			t.Errorf("testAllowed names %s, which is not in allowed", pkg)
		}
	}
}
