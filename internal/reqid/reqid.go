// Package reqid carries a request id in a context, so a storage node's log names the S3 request that caused the call.
package reqid

import "context"

// Header is the HTTP header that carries the id from a gateway to a node.
const Header = "X-Sherd-Request-Id"

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// Valid says whether id may be logged as is: 1 to 64 characters of
// [A-Za-z0-9-_.]. Ids from the wire that are not valid are dropped.
func Valid(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
