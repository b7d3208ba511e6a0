package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDaemonsRefuseWithoutSecrets: the production processes never start
// with well-known credentials or without the cluster key: sherd gateway
// and sherd node exit non-zero with a clear message and print no secret,
// though etcd is there to connect to.
func TestDaemonsRefuseWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	bin := buildSherd(t, dir)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHERD_") {
			env = append(env, kv)
		}
	}
	etcd := startServer(t, "").EtcdURL()
	for _, tc := range []struct {
		name  string
		extra []string
		args  []string
		want  string
	}{
		{"gateway without credentials", []string{"SHERD_CLUSTER_KEY=a-cluster-key-of-some-length"}, []string{"gateway", "--etcd", etcd, "--address", "127.0.0.1:0"}, "SHERD_ROOT_USER and SHERD_ROOT_PASSWORD must be set"},
		{"gateway with a password only", []string{"SHERD_CLUSTER_KEY=a-cluster-key-of-some-length", "SHERD_ROOT_PASSWORD=long-enough-secret"}, []string{"gateway", "--etcd", etcd, "--address", "127.0.0.1:0"}, "SHERD_ROOT_USER"},
		{"gateway without cluster key", []string{"SHERD_ROOT_USER=admin", "SHERD_ROOT_PASSWORD=long-enough-secret"}, []string{"gateway", "--etcd", etcd, "--address", "127.0.0.1:0"}, "SHERD_CLUSTER_KEY must be set"},
		{"node without cluster key", nil, []string{"node", "--etcd", etcd, "--data", filepath.Join(dir, "node")}, "SHERD_CLUSTER_KEY must be set"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		cmd := exec.CommandContext(ctx, bin, tc.args...)
		cmd.Env = append(append([]string{}, env...), tc.extra...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut || cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("%s: started and ran (%v):\n%s", tc.name, err, out.String())
			continue
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: output %q does not say %q", tc.name, out.String(), tc.want)
		}
		if strings.Contains(out.String(), "sherdadmin-secret") || strings.Contains(out.String(), "long-enough-secret") {
			t.Errorf("%s: a secret was printed: %s", tc.name, out.String())
		}
	}
}
