package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	s3sig "github.com/sherdstore/sherd/gateway/s3"
)

type creds map[string]string

func (c creds) SecretKey(ak string) (string, error) {
	if s, ok := c[ak]; ok {
		return s, nil
	}
	return "", s3sig.ErrInvalidAccessKeyID
}

// TestPresignFlagsAnywhere: flags are honoured wherever they stand on the
// line. Before the fix, a flag before the target made every flag after it
// be ignored: a GET URL valid for an hour instead of a PUT for 10 minutes.
func TestPresignFlagsAnywhere(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "ctl-user")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ctl-secret-key")
	v := s3sig.NewVerifier(creds{"ctl-user": "ctl-secret-key"}, nil)
	for _, line := range []string{
		"presign --endpoint http://127.0.0.1:9000 s3://photos/new.jpg --method PUT --expires 10m",
		"presign s3://photos/new.jpg --method PUT --expires 10m --endpoint http://127.0.0.1:9000",
		"presign --method PUT --expires 10m s3://photos/new.jpg",
		"presign --method=PUT s3://photos/new.jpg --expires=10m",
		"presign --expires 10m --method PUT --endpoint http://127.0.0.1:9000 -- s3://photos/new.jpg",
	} {
		var out, errOut strings.Builder
		if code := run(strings.Fields(line), &out, &errOut); code != 0 {
			t.Errorf("%s: exit %d: %s", line, code, errOut.String())
			continue
		}
		u, err := url.Parse(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if got := u.Query().Get("X-Amz-Expires"); got != "600" {
			t.Errorf("%s: X-Amz-Expires=%s, want 600", line, got)
		}
		// The URL verifies as a PUT of that key, and not as a GET.
		for method, ok := range map[string]bool{http.MethodPut: true, http.MethodGet: false} {
			r, _ := http.NewRequest(method, u.String(), nil)
			if _, err := v.Verify(r); (err == nil) != ok {
				t.Errorf("%s: verifies as %s: %v (want %v)", line, method, err == nil, ok)
			}
		}
	}
}

// TestRefusesWhatItCannotUse: every argument is used or refused with a
// usage error (exit 2), for every command; nothing is ignored.
func TestRefusesWhatItCannotUse(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "ctl-user")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ctl-secret-key")
	t.Setenv("SHERD_ETCD", "")
	t.Setenv("SHERD_CLUSTER_KEY", "")
	for _, line := range []string{
		"presign s3://photos/a.jpg s3://photos/b.jpg",  // two targets
		"presign s3://photos/a.jpg extra",              // a stray word
		"presign s3://photos/a.jpg --methd PUT",        // a misspelt flag
		"presign s3://photos/a.jpg --method",           // a flag without its value
		"presign s3://photos/a.jpg --method DELETE",    // a value it cannot do
		"presign s3://photos/a.jpg --expires 8d",       // not a duration
		"presign s3://photos/a.jpg --expires 200h",     // longer than 7 days
		"presign photos/a.jpg",                         // not s3://
		"presign",                                      // no target
		"status extra",                                 // status takes no argument
		"status --etcd http://127.0.0.1:1 --json-typo", // unknown flag
		"notify show photos --url http://x",            // a flag of another verb
		"notify --etcd http://127.0.0.1:1 set photos",  // set without --url
		"notify --etcd http://127.0.0.1:1 set photos extra --url http://x",
		"notify --etcd http://127.0.0.1:1 clear photos other",
		"notify --etcd http://127.0.0.1:1 frobnicate photos", // unknown verb
		"notify --etcd http://127.0.0.1:1 dead photos",       // dead letters are not per bucket
		"notify --etcd http://127.0.0.1:1 dead --limit 0",
		"node drain", // no node
		"node drain a b --etcd http://127.0.0.1:1",           // two nodes
		"node remove node-1 --wait-live 1s",                  // a flag of another verb
		"node frobnicate node-1",                             // unknown verb
		"rebalance --wait --stop --etcd http://127.0.0.1:1",  // exclusive flags
		"rebalance extra",                                    // no argument taken
		"scrub --etcd http://127.0.0.1:1",                    // neither NODE nor --all
		"scrub node-1 --all --etcd http://127.0.0.1:1",       // both
		"scrub a b --etcd http://127.0.0.1:1",                // two nodes
		"verify photos/a.jpg",                                // not s3://
		"verify s3://photos",                                 // no key
		"verify s3://photos/a.jpg --etcd http://127.0.0.1:1", // no cluster key anywhere
		"repair s3://a s3://b",                               // two scopes
		"repair photos/ --etcd http://127.0.0.1:1",           // not s3://
		"what-if --etcd http://127.0.0.1:1",                  // no --lose
		"status",                                             // no etcd anywhere
		"frobnicate",                                         // unknown command
	} {
		var out, errOut strings.Builder
		if code := run(strings.Fields(line), &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d (stdout %q, stderr %q), want a usage error (2)", line, code, out.String(), errOut.String())
		}
		if out.Len() != 0 {
			t.Errorf("%q: printed %q on a usage error", line, out.String())
		}
	}
}
