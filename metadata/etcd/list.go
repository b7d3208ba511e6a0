package etcd

// Paging with a delimiter without reading what is rolled up.
//
// Invariants:
//   - Keys are probed keys-only: with a delimiter one at a time at first
//     and after each common prefix, doubling while none turns up (without
//     one, a page at once). A key that rolls up into a common prefix costs
//     its key bytes, and the listing jumps past the whole prefix at once:
//     a page over 1,000 folders reads about 1,000 keys, not the folders'
//     contents.
//   - Values are read only for the entries that go in the page, in one
//     ranged read per run of consecutive entries, at the revision of the
//     probe that found them: the page is what etcd held at that revision.

import (
	"context"
	"errors"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const probeMax = 1000

// pageEntry is one entry of a page: a common prefix, or a key (relative
// to the listing's base) and its value.
type pageEntry struct {
	prefix string
	rel    string
	value  []byte
}

// listPage returns up to max entries of the keys in [start, end), each
// relative to base; rollup(rel) names the common prefix rel rolls up
// into ("" for none; rollup nil: there is no delimiter). truncated says
// more entries follow.
func (s *Store) listPage(ctx context.Context, base, start, end string, max int, rollup func(rel string) string) (page []pageEntry, truncated bool, err error) {
	probe := 1
	if rollup == nil {
		probe = probeMax
		rollup = func(string) string { return "" }
	}
	for start < end {
		if len(page) == max {
			more, err := s.kv.Get(ctx, start, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
			if err != nil {
				return page, false, err
			}
			return page, len(more.Kvs) > 0, nil
		}
		resp, err := s.kv.Get(ctx, start, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(min(probe, max-len(page)+1))))
		if err != nil {
			return page, false, err
		}
		if len(resp.Kvs) == 0 {
			return page, false, nil
		}
		var run []string // consecutive keys whose values go in the page
		rolled := false
		for _, kv := range resp.Kvs {
			if len(page)+len(run) == max {
				break
			}
			rel := strings.TrimPrefix(string(kv.Key), base)
			if cp := rollup(rel); cp != "" {
				if page, err = s.fill(ctx, page, run, base, resp.Header.Revision); err != nil {
					return page, false, err
				}
				run = nil
				page = append(page, pageEntry{prefix: cp})
				start = clientv3.GetPrefixRangeEnd(base + cp)
				rolled = true
				break
			}
			run = append(run, string(kv.Key))
			start = string(kv.Key) + "\x00"
		}
		if page, err = s.fill(ctx, page, run, base, resp.Header.Revision); err != nil {
			return page, false, err
		}
		switch {
		case rolled:
			probe = 1
		case !resp.More && len(page) < max:
			return page, false, nil
		default:
			probe = min(2*probe, probeMax)
		}
	}
	return page, false, nil
}

// fill appends the entries of keys (consecutive in the keyspace at rev)
// with their values, read in one ranged read at rev.
func (s *Store) fill(ctx context.Context, page []pageEntry, keys []string, base string, rev int64) ([]pageEntry, error) {
	if len(keys) == 0 {
		return page, nil
	}
	resp, err := s.kv.Get(ctx, keys[0], clientv3.WithRange(keys[len(keys)-1]+"\x00"), clientv3.WithRev(rev))
	if errors.Is(err, rpctypes.ErrCompacted) {
		// Compacted since the probe (rare): read now, keep the probed keys.
		resp, err = s.kv.Get(ctx, keys[0], clientv3.WithRange(keys[len(keys)-1]+"\x00"))
	}
	if err != nil {
		return page, err
	}
	for _, kv := range resp.Kvs {
		if _, found := slices.BinarySearch(keys, string(kv.Key)); found {
			page = append(page, pageEntry{rel: strings.TrimPrefix(string(kv.Key), base), value: kv.Value})
		}
	}
	return page, nil
}
