package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9000": true, "127.8.9.10:0": true, "localhost:9000": true, "[::1]:9000": true,
		":9000": false, "0.0.0.0:9000": false, "[::]:9000": false, "10.0.0.5:9000": false,
		"s3.example.com:443": false, "garbage": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestGatewayNeedsCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"none", nil, false},
		{"user only", map[string]string{"SHERD_ROOT_USER": "admin"}, false},
		{"password only", map[string]string{"SHERD_ROOT_PASSWORD": "long-enough-secret"}, false},
		{"short password", map[string]string{"SHERD_ROOT_USER": "admin", "SHERD_ROOT_PASSWORD": "short"}, false},
		{"both", map[string]string{"SHERD_ROOT_USER": "admin", "SHERD_ROOT_PASSWORD": "long-enough-secret"}, true},
	} {
		c, err := gatewayCredentials(envOf(tc.env))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if err == nil && (c.source != fromEnv || c.pass == defaultPassword) {
			t.Errorf("%s: %+v", tc.name, c)
		}
	}
}

func TestServerCredentials(t *testing.T) {
	// Loopback: the documented defaults.
	c, err := serverCredentials(envOf(nil), "127.0.0.1:9000", t.TempDir())
	if err != nil || c.source != fromDefault || c.user != defaultUser {
		t.Fatalf("loopback: %+v %v", c, err)
	}
	// The environment wins everywhere.
	env := envOf(map[string]string{"SHERD_ROOT_USER": "admin", "SHERD_ROOT_PASSWORD": "long-enough-secret"})
	if c, err := serverCredentials(env, "0.0.0.0:9000", t.TempDir()); err != nil || c.source != fromEnv || c.user != "admin" {
		t.Fatalf("env: %+v %v", c, err)
	}
	// Elsewhere: random ones, stored 0600, the same on the next start.
	dir := t.TempDir()
	first, err := serverCredentials(envOf(nil), ":9000", dir)
	if err != nil || first.source != fromGenerated || first.pass == defaultPassword || len(first.pass) < 32 {
		t.Fatalf("generated: %+v %v", first, err)
	}
	fi, err := os.Stat(filepath.Join(dir, credentialsFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored credentials: %v %v", fi, err)
	}
	again, err := serverCredentials(envOf(nil), "0.0.0.0:9000", dir)
	if err != nil || again.source != fromStored || again.user != first.user || again.pass != first.pass {
		t.Fatalf("second start: %+v %v", again, err)
	}
	other, _ := serverCredentials(envOf(nil), ":9000", t.TempDir())
	if other.pass == first.pass {
		t.Fatal("two data dirs got the same secret")
	}
}

// TestPrintEndpointHidesSecrets: stdout shows a secret only when it is the
// loopback default or was generated just now.
func TestPrintEndpointHidesSecrets(t *testing.T) {
	for _, tc := range []struct {
		c    rootCreds
		show bool
	}{
		{rootCreds{user: "u", pass: "env-secret-value", source: fromEnv}, false},
		{rootCreds{user: "u", pass: "stored-secret-value", source: fromStored, path: "/d/root-credentials"}, false},
		{rootCreds{user: "u", pass: "generated-secret-value", source: fromGenerated, path: "/d/root-credentials"}, true},
		{rootCreds{user: defaultUser, pass: defaultPassword, source: fromDefault}, true},
	} {
		var buf strings.Builder
		printEndpoint(&buf, "http://127.0.0.1:9000", tc.c)
		out := buf.String()
		if strings.Contains(out, tc.c.pass) != tc.show {
			t.Errorf("source %d: secret shown=%v, want %v:\n%s", tc.c.source, !tc.show, tc.show, out)
		}
	}
}
