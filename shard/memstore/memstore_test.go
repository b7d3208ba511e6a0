package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/memstore"
	"github.com/sherdstore/sherd/shard/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) shard.Store { return memstore.New(nil) })
}

// TestDamage: damage is bitrot: Stat still says what was stored, a whole
// read ends in ErrCorrupt, a ranged read returns the damaged bytes.
func TestDamage(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(func() time.Time { return time.Unix(1e9, 0) })
	id := storetest.ID(7, 1, 2)
	file := storetest.MakeShard(1, 9000)
	info, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Damage(id, 100, 0x80); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx, id); err != nil || st != info {
		t.Fatalf("stat after damage: %+v %v, want %+v", st, err, info)
	}
	rc, _ := s.Open(ctx, id, 0, -1)
	if _, err := io.ReadAll(rc); !errors.Is(err, shard.ErrCorrupt) {
		t.Fatalf("whole read of a damaged shard: %v", err)
	}
	rc, _ = s.Open(ctx, id, 100, 1)
	if b, err := io.ReadAll(rc); err != nil || b[0] != file[100]^0x80 {
		t.Fatalf("ranged read: %v %v", b, err)
	}
	if err := s.Damage(storetest.ID(7, 2, 0), 0, 1); !errors.Is(err, shard.ErrNotFound) {
		t.Fatalf("damage of a missing shard: %v", err)
	}
}
