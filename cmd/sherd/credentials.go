package main

// Root credentials of the S3 gateway.
//
// Invariants:
//   - A production process (sherd gateway) never starts with credentials
//     anybody could guess: both SHERD_ROOT_USER and SHERD_ROOT_PASSWORD
//     are required, or it exits with an error.
//   - sherd server may use the documented defaults only while its S3 port
//     listens on loopback; on any other address it generates random ones,
//     stores them (0600) in its data directory and prints them once, when
//     they are made.
//   - No secret goes to the log; stdout shows a secret only when it is the
//     documented default or was just generated.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Default root credentials of sherd server on loopback.
const (
	defaultUser     = "sherdadmin"
	defaultPassword = "sherdadmin-secret"
	// minPassword is the shortest secret accepted from the environment.
	minPassword = 8
	// credentialsFile holds sherd server's generated credentials.
	credentialsFile = "root-credentials"
)

// credSource says where credentials came from, which decides what may be
// printed.
type credSource int

const (
	fromEnv       credSource = iota // the operator's: the secret is never printed
	fromDefault                     // the documented loopback defaults
	fromGenerated                   // made now: printed this once
	fromStored                      // made by an earlier start: not printed again
)

type rootCreds struct {
	user, pass string
	source     credSource
	path       string // the file of generated or stored credentials
}

var errNoCredentials = errors.New("SHERD_ROOT_USER and SHERD_ROOT_PASSWORD must be set: a gateway never starts with default credentials")

// envCredentials reads the credentials from the environment: both or
// none (ok false).
func envCredentials(getenv func(string) string) (c rootCreds, ok bool, err error) {
	user, pass := getenv("SHERD_ROOT_USER"), getenv("SHERD_ROOT_PASSWORD")
	switch {
	case user == "" && pass == "":
		return c, false, nil
	case user == "" || pass == "":
		return c, false, fmt.Errorf("set both SHERD_ROOT_USER and SHERD_ROOT_PASSWORD, or neither")
	case len(pass) < minPassword:
		return c, false, fmt.Errorf("SHERD_ROOT_PASSWORD must have at least %d characters", minPassword)
	case strings.ContainsAny(user, ":/ \t\n"):
		return c, false, fmt.Errorf("SHERD_ROOT_USER may not contain ':', '/' or white space")
	}
	return rootCreds{user: user, pass: pass, source: fromEnv}, true, nil
}

// gatewayCredentials: the environment's, or an error.
func gatewayCredentials(getenv func(string) string) (rootCreds, error) {
	c, ok, err := envCredentials(getenv)
	if err != nil {
		return c, err
	}
	if !ok {
		return c, errNoCredentials
	}
	return c, nil
}

// serverCredentials: the environment's; else the defaults on a loopback
// address; else those stored in dataDir, made and stored there the first
// time.
func serverCredentials(getenv func(string) string, addr, dataDir string) (rootCreds, error) {
	if c, ok, err := envCredentials(getenv); ok || err != nil {
		return c, err
	}
	if isLoopback(addr) {
		return rootCreds{user: defaultUser, pass: defaultPassword, source: fromDefault}, nil
	}
	path := filepath.Join(dataDir, credentialsFile)
	if b, err := os.ReadFile(path); err == nil {
		user, pass, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok || user == "" || len(pass) < minPassword {
			return rootCreds{}, fmt.Errorf("%s: malformed (want ACCESS_KEY:SECRET)", path)
		}
		return rootCreds{user: user, pass: pass, source: fromStored, path: path}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return rootCreds{}, err
	}
	var u [8]byte
	var p [24]byte
	rand.Read(u[:])
	rand.Read(p[:])
	c := rootCreds{user: "sherd" + hex.EncodeToString(u[:]), pass: hex.EncodeToString(p[:]), source: fromGenerated, path: path}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return rootCreds{}, err
	}
	// O_EXCL: two servers on one data dir cannot both make credentials.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return rootCreds{}, err
	}
	if _, err := fmt.Fprintf(f, "%s:%s\n", c.user, c.pass); err != nil {
		f.Close()
		return rootCreds{}, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return rootCreds{}, err
	}
	return c, f.Close()
}

// isLoopback says whether a listen address binds loopback only. An empty
// host (all interfaces) or a name other than localhost is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// printEndpoint tells the operator how to connect, showing the secret
// only where the invariants above allow it.
func printEndpoint(w io.Writer, url string, c rootCreds) {
	fmt.Fprintf(w, "Sherd S3 endpoint: %s\n", url)
	switch c.source {
	case fromDefault:
		fmt.Fprintf(w, "  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n", c.user, c.pass)
		fmt.Fprintln(w, "  (default credentials, loopback only: set SHERD_ROOT_USER and SHERD_ROOT_PASSWORD to choose your own)")
		fmt.Fprintf(w, "  try: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s aws --endpoint-url %s s3 ls\n", c.user, c.pass, url)
	case fromGenerated:
		fmt.Fprintf(w, "  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n", c.user, c.pass)
		fmt.Fprintf(w, "  (generated for this non-loopback address and stored in %s; shown this once)\n", c.path)
	case fromStored:
		fmt.Fprintf(w, "  AWS_ACCESS_KEY_ID=%s (secret in %s)\n", c.user, c.path)
	case fromEnv:
		fmt.Fprintf(w, "  AWS_ACCESS_KEY_ID=%s (secret from SHERD_ROOT_PASSWORD)\n", c.user)
	}
}
