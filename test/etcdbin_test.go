package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The multi-process tests run etcd as separate processes. Its binary is
// built from the etcd server module this repository already requires
// (go.mod), so they need Go and nothing else (no Debian etcd-server):
// once per machine and etcd version, into the user's cache directory
// (~/.cache/sherd-test/etcd-<version>-<os>-<arch>/etcd), under a file
// lock, so concurrent test binaries build it once between them.
// SHERD_TEST_ETCD=/path/to/etcd runs another binary instead (Debian's,
// to test against it).

// etcdModule is the etcd server's module; its root package is the main
// package of the etcd binary (3.5 and later).
const etcdModule = "go.etcd.io/etcd/server/v3"

var etcdBin struct {
	once sync.Once
	path string
	err  error
}

// etcdBinary returns the etcd binary the multi-process tests spawn,
// building it on first use; it skips t (never fails it) when the binary
// cannot be had.
func etcdBinary(t testing.TB) string {
	t.Helper()
	path, err := etcdBinaryPath()
	if err != nil {
		t.Skipf("no etcd binary for the multi-process tests: %v", err)
	}
	return path
}

// etcdBinaryPath is etcdBinary without a test: the path, or why there is
// none.
func etcdBinaryPath() (string, error) {
	etcdBin.once.Do(func() { etcdBin.path, etcdBin.err = findEtcd() })
	return etcdBin.path, etcdBin.err
}

func findEtcd() (string, error) {
	if p := os.Getenv("SHERD_TEST_ETCD"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SHERD_TEST_ETCD: %w", err)
		}
		return p, nil
	}
	version, err := etcdModuleVersion()
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sherd-test", fmt.Sprintf("etcd-%s-%s-%s", version, runtime.GOOS, runtime.GOARCH))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "etcd")
	// One builder at a time; the others wait and then find the binary.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return bin, nil
	}
	// Built beside and renamed into place: a binary at bin is complete.
	tmp := filepath.Join(dir, fmt.Sprintf("etcd.%d.tmp", os.Getpid()))
	defer os.Remove(tmp)
	cmd := exec.Command("go", "build", "-o", tmp, etcdModule)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s@%s failed (needs the Go toolchain and the module, from the module cache or the Go module proxy): %v\n%s", etcdModule, version, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// etcdModuleVersion is the version of etcdModule this test binary was
// built with (go.mod's, or its replacement's).
func etcdModuleVersion() (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path != etcdModule {
				continue
			}
			if r := m.Replace; r != nil {
				return strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(r.Path + "@" + r.Version), nil
			}
			return m.Version, nil
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", etcdModule).Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v, nil
	}
	return "", fmt.Errorf("cannot tell which version of %s go.mod requires (go list -m: %v)", etcdModule, err)
}
