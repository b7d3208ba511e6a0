package cluster

import (
	"slices"
	"testing"
)

func TestChooseWriteNodes(t *testing.T) {
	order := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	preferred := order[:6]
	R, S, U := nodeReady, nodeSuspect, nodeUnusable
	for _, tc := range []struct {
		name  string
		conds map[string]nodeCondition // default ready
		want  []string
	}{
		{"all ready: the ring's choice", nil, []string{"a", "b", "c", "d", "e", "f"}},
		{"one down: first spare in its place", map[string]nodeCondition{"b": U}, []string{"a", "g", "c", "d", "e", "f"}},
		{"two down: spares in ring order", map[string]nodeCondition{"b": U, "e": U}, []string{"a", "g", "c", "d", "h", "f"}},
		{"suspect replaced by a ready spare", map[string]nodeCondition{"c": S}, []string{"a", "b", "g", "d", "e", "f"}},
		{"spare not ready is skipped", map[string]nodeCondition{"a": U, "g": U}, []string{"h", "b", "c", "d", "e", "f"}},
		{"three out, two spares: the last stays", map[string]nodeCondition{"a": U, "b": U, "c": U}, []string{"g", "h", "c", "d", "e", "f"}},
		{"no ready spare: a suspect one stands in for a down node", map[string]nodeCondition{"a": U, "g": S, "h": U}, []string{"g", "b", "c", "d", "e", "f"}},
		{"no ready spare: a suspect node stays", map[string]nodeCondition{"a": S, "g": S, "h": S}, []string{"a", "b", "c", "d", "e", "f"}},
		{"ready spares go to the down before the suspect", map[string]nodeCondition{"a": S, "b": U, "h": U}, []string{"a", "g", "c", "d", "e", "f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cond := func(id string) nodeCondition {
				if c, ok := tc.conds[id]; ok {
					return c
				}
				return R
			}
			got := chooseWriteNodes(preferred, order, cond)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
