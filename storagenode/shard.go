// Package storagenode is a storage node: a shard store on local disk with a bbolt index, Merkle inventory, scrubber and HTTP API.
package storagenode

import "errors"

// ErrUnauthorized: a request to a node's API not signed with the cluster
// key (the shard contract's errors are in package shard).
var ErrUnauthorized = errors.New("request not signed with the cluster key")
