package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/repair"
)

// statusReport is everything `sherdctl status` shows.
type statusReport struct {
	Nodes     []nodeStatus                `json:"nodes"`
	Live      int                         `json:"live"`
	Segments  int                         `json:"segments"`
	ByHealth  []healthClass               `json:"segments_by_healthy_shards"`
	Queues    map[string]queueBacklog     `json:"queues"`
	Repairers []metadata.ProcessStatus    `json:"repairers"`
	Scrubbers []metadata.ProcessStatus    `json:"scrubbers"`
	Requests  map[string]metadata.Request `json:"requests,omitempty"`
}

type nodeStatus struct {
	ID       string               `json:"id"`
	State    metadata.NodeState   `json:"state"`
	Live     bool                 `json:"live"`
	Address  string               `json:"address"`
	Zone     string               `json:"zone,omitempty"`
	Started  time.Time            `json:"started"`
	Recorded int                  `json:"shards_recorded"` // shards segment records put on it
	Disk     *metadata.DiskReport `json:"disk,omitempty"`
}

type healthClass struct {
	Healthy  int `json:"healthy"`
	K        int `json:"k"`
	N        int `json:"n"`
	Segments int `json:"segments"`
}

type queueBacklog struct {
	Total int `json:"total"`
	Due   int `json:"due"`
}

func gatherStatus(ctx context.Context, store metadata.Store, now time.Time) (statusReport, error) {
	rep := statusReport{Queues: map[string]queueBacklog{}, Requests: map[string]metadata.Request{}}
	nodes, err := store.ListNodes(ctx)
	if err != nil {
		return rep, err
	}
	for _, q := range []string{"repair", "gc", "events"} {
		total, due, err := store.QueueLength(ctx, q, now)
		if err != nil {
			return rep, err
		}
		rep.Queues[q] = queueBacklog{total, due}
	}
	// Segments by healthy shards, from metadata alone: recorded shards on
	// live nodes (one scan of every partition's segment records).
	liveNode := map[string]bool{}
	for _, n := range nodes {
		liveNode[n.ID] = n.Live && n.State != metadata.NodeRemoved
	}
	type class struct{ healthy, k, n int }
	byHealth := map[class]int{}
	perNode := map[string]int{}
	if _, err := store.ScanSegments(ctx, func(seg metadata.Segment) error {
		h := repair.RecordedHealthy(seg, func(id string) bool { return liveNode[id] })
		byHealth[class{h, seg.Profile.K, seg.Profile.K + seg.Profile.M}]++
		rep.Segments++
		for _, id := range seg.Nodes {
			perNode[id]++
		}
		return nil
	}); err != nil {
		return rep, err
	}
	classes := slices.Collect(maps.Keys(byHealth))
	slices.SortFunc(classes, func(a, b class) int { return b.healthy - a.healthy })
	for _, c := range classes {
		rep.ByHealth = append(rep.ByHealth, healthClass{c.healthy, c.k, c.n, byHealth[c]})
	}
	sts, err := store.ListStatus(ctx)
	if err != nil {
		return rep, err
	}
	disks := map[string]*metadata.DiskReport{}
	for _, st := range sts {
		switch {
		case st.Kind == "node":
			disks[st.Name] = st.Disk
			if st.Scrub != nil {
				rep.Scrubbers = append(rep.Scrubbers, st)
			}
		case st.Repair != nil:
			rep.Repairers = append(rep.Repairers, st)
		}
	}
	for _, n := range nodes {
		if n.Live {
			rep.Live++
		}
		rep.Nodes = append(rep.Nodes, nodeStatus{ID: n.ID, State: n.State, Live: n.Live, Address: n.Address, Zone: n.Zone,
			Started: n.Started, Recorded: perNode[n.ID], Disk: disks[n.ID]})
	}
	for _, kind := range []string{"rebalance", "antientropy"} {
		if r, ok, err := store.GetRequest(ctx, kind, "all"); err != nil {
			return rep, err
		} else if ok {
			rep.Requests[kind] = r
		}
	}
	return rep, nil
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func printStatus(stdout io.Writer, rep statusReport) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tLIVE\tSHARDS\tDISK USED\tADDRESS\tZONE\tSTARTED")
	for _, n := range rep.Nodes {
		l := "DOWN"
		if n.Live {
			l = "up"
		}
		state := string(n.State)
		if n.State == metadata.NodeDraining {
			state = fmt.Sprintf("draining (%d left)", n.Recorded)
		}
		disk := "?"
		if d := n.Disk; d != nil && d.Total > 0 {
			disk = fmt.Sprintf("%s of %s (%.0f%%), shards %s", humanize.IBytes(uint64(d.Used)), humanize.IBytes(uint64(d.Total)),
				100*float64(d.Used)/float64(d.Total), humanize.IBytes(uint64(d.ShardBytes)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.ID, state, l, n.Recorded, disk, n.Address, n.Zone, n.Started.Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nsegments by healthy shards (recorded, on live nodes): %d in all", rep.Segments)
	for _, c := range rep.ByHealth {
		note := ""
		if c.Healthy < c.K {
			note = " (UNREADABLE)"
		} else if c.Healthy == c.K {
			note = " (no redundancy left)"
		}
		fmt.Fprintf(stdout, "; %d/%d%s: %d", c.Healthy, c.N, note, c.Segments)
	}
	fmt.Fprintln(stdout)
	printProgress(stdout, rep)
	for kind, r := range rep.Requests {
		fmt.Fprintf(stdout, "\nrequest pending: %s (%s, %s)", kind, r.ID, ago(r.Time))
	}
	q := rep.Queues
	fmt.Fprintf(stdout, "\n%d of %d nodes live; repair queue: %d entries (%d due); gc queue: %d entries; notifications waiting: %d (%d due, the others claimed or waiting to retry)\n",
		rep.Live, len(rep.Nodes), q["repair"].Total, q["repair"].Due, q["gc"].Total, q["events"].Total, q["events"].Due)
	return nil
}

// printProgress shows what the scrubbers, repairers and movers last
// published.
func printProgress(stdout io.Writer, rep statusReport) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for i, st := range rep.Scrubbers {
		if i == 0 {
			fmt.Fprintln(tw, "\nSCRUB\tLAST PASS\tTOOK\tSHARDS\tCORRUPT\tNOW\tREPORTED")
		}
		sc := st.Scrub
		now := "idle"
		if sc.Running {
			now = fmt.Sprintf("pass %d at %.0f%%", sc.Passes+1, 100*sc.Fraction)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", st.Name, ago(sc.LastPass), sc.LastTook.Round(time.Millisecond), sc.LastShards, sc.LastCorrupt, now, ago(st.Time))
	}
	for i, st := range rep.Repairers {
		if i == 0 {
			fmt.Fprintln(tw, "\nREPAIRER\tLAST PASS\tSEGMENTS\tSHARDS\tREAD\tRATE\tWAITING\tMOVED\tREPORTED")
		}
		r := st.Repair
		moved := "-"
		if mv := st.Move; mv != nil {
			moved = fmt.Sprintf("%d (%s)", mv.Moved, humanize.IBytes(uint64(mv.Bytes)))
			if mv.Waiting > 0 {
				moved += fmt.Sprintf(", %d waiting", mv.Waiting)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f MiB\t%.1f MiB/s\t%d\t%s\t%s\n", st.Name, ago(r.LastPass), r.Segments, r.ShardsRebuilt,
			float64(r.BytesRead)/(1<<20), r.Rate/(1<<20), r.Waiting, moved, ago(st.Time))
		if r.LastError != "" {
			fmt.Fprintf(tw, "\t  last error: %s\n", r.LastError)
		}
		if mv := st.Move; mv != nil && mv.LastErr != "" {
			fmt.Fprintf(tw, "\t  last move error: %s\n", mv.LastErr)
		}
		for _, role := range slices.Sorted(maps.Keys(r.Leases)) {
			if l := r.Leases[role]; !l.Live {
				fmt.Fprintf(tw, "\t  NO LEASE: the %s worker has had no etcd lease since %s (%d lost): it claims no work until it has one\n",
					role, ago(l.Since), l.Lapses)
			} else if l.Lapses > 0 {
				fmt.Fprintf(tw, "\t  the %s worker lost its etcd lease %d times (last renewed %s)\n", role, l.Lapses, ago(l.Since))
			}
		}
	}
	rounds := 0
	for _, st := range rep.Repairers {
		if st.Repair.LastRound == nil {
			continue
		}
		if rounds == 0 {
			fmt.Fprintln(tw, "\nANTI-ENTROPY\tLAST ROUND\tTOOK\tROUNDS\tNODES\tPARTITIONS\tMISSING\tWRONG\tUNEXPECTED\tREBUILT\tSWEPT\tNODE CALLS")
		}
		rounds++
		r := st.Repair.LastRound
		swept := fmt.Sprint(r.Swept)
		if r.SweptLists > 0 {
			swept += fmt.Sprintf(" +%d lists", r.SweptLists)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d/%d\t%d\t%d\t%d\t%d\t%s\t%d\n", st.Name, ago(r.Started), r.Took.Round(time.Millisecond),
			st.Repair.Rounds, r.Nodes, r.Examined, r.Differing, r.Missing, r.Wrong, r.Unexpected, r.Rebuilt, swept, r.NodeCalls)
		if r.Error != "" {
			fmt.Fprintf(tw, "\t  error: %s\n", r.Error)
		}
	}
	tw.Flush()
}
