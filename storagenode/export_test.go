package storagenode

import (
	"bytes"
	"github.com/sherdstore/sherd/shard"

	bolt "go.etcd.io/bbolt"
)

// RotInline rewrites the stored bytes of inline shard id with f's result,
// with no check: rot, for the scrubber's tests. It reports whether the
// shard is inline.
func RotInline(s *Store, id shard.ID, f func([]byte) []byte) (bool, error) {
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInline)
		v := b.Get([]byte(id.String()))
		if v == nil {
			return nil
		}
		found = true
		return b.Put([]byte(id.String()), f(bytes.Clone(v)))
	})
	return found, err
}
