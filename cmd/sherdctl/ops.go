package main

// Operating a cluster: node add / drain / remove, rebalance, repair,
// scrub, verify. The work itself is done by the cluster's processes (the
// healers' movers and anti-entropy, the nodes' scrubbers); sherdctl
// changes the state or posts a request in etcd and follows the progress
// from metadata, so closing the terminal never stops or half-does a
// drain. verify and repair of a bucket or prefix ask the nodes directly
// (signed with the cluster key).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/internal/clustertls"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	"github.com/sherdstore/sherd/repair"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode/client"
)

// ui is where a command writes: results to out, progress bars to errw
// and only when out is a terminal (scripts and pipes get no bars).
type ui struct {
	out, errw io.Writer
	tty       bool
}

// bar is a progress bar with an ETA over total units (-1: unknown).
func (u *ui) bar(total int64, desc string, bytes bool) *progressbar.ProgressBar {
	w := u.errw
	if !u.tty {
		w = io.Discard
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30), progressbar.OptionFullWidth(),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	return progressbar.NewOptions64(total, opts...)
}

func (u *ui) json(v any) error {
	enc := json.NewEncoder(u.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// pollEvery is how often waits look at the cluster again.
const pollEvery = time.Second

// callTimeout bounds each etcd or node call of a command.
const callTimeout = 30 * time.Second

// withStoreUntil connects to etcd and runs f with the metadata store and
// a context that ends after timeout (0: none) or at an interrupt; f gives
// each call its own deadline (call).
func withStoreUntil(etcdURLs string, timeout time.Duration, f func(ctx context.Context, store metadata.Store) error) error {
	if etcdURLs == "" {
		return usagef("--etcd (or SHERD_ETCD) is required")
	}
	cli, err := metaetcd.Dial(etcdURLs)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, stop := signalContext()
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err = f(ctx, metaetcd.New(cli, metaetcd.Options{}))
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("gave up waiting after %v (the work goes on in the cluster; look again with sherdctl status)", timeout)
	}
	return err
}

// call runs one etcd or node call with its own deadline.
func call[T any](ctx context.Context, f func(ctx context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return f(cctx)
}

// sleep waits pollEvery or until ctx ends.
func sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pollEvery):
		return nil
	}
}

// postRequest asks the cluster's workers for kind on target now and
// returns the request.
func postRequest(ctx context.Context, store metadata.Store, kind, target string) (metadata.Request, error) {
	r := metadata.Request{ID: newRequestID(), Kind: kind, Target: target, Time: time.Now().UTC()}
	_, err := call(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, store.PutRequest(ctx, r) })
	return r, err
}

func newRequestID() string {
	return time.Now().UTC().Format("20060102T150405.000Z") + "-" + cluster.NewID()[:8]
}

// maxArgs allows at most n arguments, answering a usage error.
func maxArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("want %s, got %d arguments: %q", names, len(args), args)
		}
		return nil
	}
}

// findNode returns the member id, or a usage error naming the members.
func findNode(nodes []metadata.Node, id string) (metadata.Node, error) {
	for _, n := range nodes {
		if n.ID == id {
			return n, nil
		}
	}
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return metadata.Node{}, usagef("unknown node %q (the nodes are %s)", id, strings.Join(ids, ", "))
}

// placementCensus is what a scan of the segment records says about where
// shards are: how many each node holds, the widest profile (k+m), and how
// many shards rebalancing would move.
type placementCensus struct {
	Segments   int            `json:"segments"`
	PerNode    map[string]int `json:"shards_per_node"`
	MaxShards  int            `json:"max_shards"` // the largest k+m in use
	Misplaced  int            `json:"misplaced"`  // shards rebalancing would move now
	OnDraining int            `json:"on_draining_or_removed"`
}

func census(ctx context.Context, store metadata.Store, nodes []metadata.Node) (placementCensus, error) {
	c := placementCensus{PerNode: map[string]int{}}
	byID, active := repair.Members(nodes)
	ring, ringErr := cluster.Ring(nodes)
	_, err := store.ScanSegments(ctx, func(seg metadata.Segment) error {
		c.Segments++
		c.MaxShards = max(c.MaxShards, len(seg.Nodes))
		for _, id := range seg.Nodes {
			c.PerNode[id]++
			if st := byID[id].State; st == metadata.NodeDraining || st == metadata.NodeRemoved {
				c.OnDraining++
			}
		}
		if ringErr == nil {
			order, err := ring.Place(seg.ID, active)
			if err == nil {
				for _, mv := range repair.PlanMoves(seg, byID, order, true) {
					if repair.Leaving(mv.From, byID, nil, false) == "" {
						c.Misplaced++
					}
				}
			}
		}
		return nil
	})
	return c, err
}

func nodeCmd(u *ui) *cobra.Command {
	c := &cobra.Command{Use: "node", Short: "add, drain and remove storage nodes", Args: cobra.ArbitraryArgs, RunE: needSubcommand}
	etcdURLs := etcdFlag(c, true)
	asJSON := c.PersistentFlags().Bool("json", false, "print the result as JSON")
	timeout := c.PersistentFlags().Duration("timeout", 0, "give up waiting after this long (0: never)")

	add := &cobra.Command{Use: "add NODE", Short: "admit a node started with `sherd node` (or return a drained or removed one to service): new writes use it", Args: exactArgs(1, "NODE")}
	addWait := add.Flags().Duration("wait-live", time.Minute, "how long to wait for the node to register and be live")
	add.RunE = func(_ *cobra.Command, args []string) error {
		return withStoreUntil(*etcdURLs, *timeout, func(ctx context.Context, store metadata.Store) error {
			return nodeAdd(ctx, u, store, args[0], *addWait, *asJSON)
		})
	}

	drain := &cobra.Command{Use: "drain NODE [--wait]", Short: "move every shard off a node (it serves reads until empty); refused if the rest cannot hold k+m distinct shards", Args: exactArgs(1, "NODE")}
	drainWait := drain.Flags().Bool("wait", false, "follow the drain until the node holds no shard")
	drain.RunE = func(_ *cobra.Command, args []string) error {
		return withStoreUntil(*etcdURLs, *timeout, func(ctx context.Context, store metadata.Store) error {
			return nodeDrain(ctx, u, store, args[0], *drainWait, *asJSON)
		})
	}

	remove := &cobra.Command{Use: "remove NODE [--force]", Short: "forget a drained node; --force: a dead node whose shards are rebuilt elsewhere", Args: exactArgs(1, "NODE")}
	force := remove.Flags().Bool("force", false, "remove a node that is down without draining it: its shards are rebuilt from the others")
	removeWait := remove.Flags().Bool("wait", false, "with --force: follow the rebuild until no shard is recorded on the node")
	remove.RunE = func(_ *cobra.Command, args []string) error {
		return withStoreUntil(*etcdURLs, *timeout, func(ctx context.Context, store metadata.Store) error {
			return nodeRemove(ctx, u, store, args[0], *force, *removeWait, *asJSON)
		})
	}
	c.AddCommand(add, drain, remove)
	return c
}

type nodeResult struct {
	Node   string `json:"node"`
	State  string `json:"state"`
	Live   bool   `json:"live"`
	Shards int    `json:"shards"` // shards recorded on it
	Note   string `json:"note,omitempty"`
}

func (u *ui) nodeResult(r nodeResult, asJSON bool) error {
	if asJSON {
		return u.json(r)
	}
	fmt.Fprintf(u.out, "%s: %s, %s, %d shards recorded on it", r.Node, r.State, map[bool]string{true: "live", false: "DOWN"}[r.Live], r.Shards)
	if r.Note != "" {
		fmt.Fprintf(u.out, "; %s", r.Note)
	}
	fmt.Fprintln(u.out)
	return nil
}

func nodeAdd(ctx context.Context, u *ui, store metadata.Store, id string, waitLive time.Duration, asJSON bool) error {
	deadline := time.Now().Add(waitLive)
	var n metadata.Node
	for {
		nodes, err := call(ctx, store.ListNodes)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(nodes, func(n metadata.Node) bool { return n.ID == id })
		if i >= 0 && nodes[i].Live {
			n = nodes[i]
			break
		}
		if time.Now().After(deadline) {
			if i < 0 {
				return fmt.Errorf("node %s has not registered: start it with `sherd node --id %s --etcd … --data DIR` first", id, id)
			}
			return fmt.Errorf("node %s is registered but not live: is its process running?", id)
		}
		if err := sleep(ctx); err != nil {
			return err
		}
	}
	note := "already active: new writes use it; run `sherdctl rebalance` to move existing shards onto it"
	if n.State != metadata.NodeActive && n.State != "" {
		if _, err := call(ctx, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, store.SetNodeState(ctx, id, metadata.NodeActive)
		}); err != nil {
			return err
		}
		note = fmt.Sprintf("was %s, now active: new writes use it; run `sherdctl rebalance` to move existing shards onto it", n.State)
	}
	return u.nodeResult(nodeResult{Node: id, State: string(metadata.NodeActive), Live: true, Note: note}, asJSON)
}

func nodeDrain(ctx context.Context, u *ui, store metadata.Store, id string, wait, asJSON bool) error {
	nodes, err := call(ctx, store.ListNodes)
	if err != nil {
		return err
	}
	n, err := findNode(nodes, id)
	if err != nil {
		return err
	}
	if n.State == metadata.NodeRemoved {
		return usagef("node %s was removed; `sherdctl node add %s` returns it to service", id, id)
	}
	c, err := call(ctx, func(ctx context.Context) (placementCensus, error) { return census(ctx, store, nodes) })
	if err != nil {
		return err
	}
	remaining := 0
	for _, m := range nodes {
		if m.ID != id && (m.State == metadata.NodeActive || m.State == "") {
			remaining++
		}
	}
	if need := max(c.MaxShards, 1); remaining < need {
		return fmt.Errorf("refused: draining %s leaves %d active nodes, and segments need %d distinct nodes (k+m); add a node first", id, remaining, need)
	}
	if n.State != metadata.NodeDraining {
		if _, err := call(ctx, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, store.SetNodeState(ctx, id, metadata.NodeDraining)
		}); err != nil {
			return err
		}
	}
	total := c.PerNode[id]
	if !wait {
		return u.nodeResult(nodeResult{Node: id, State: string(metadata.NodeDraining), Live: n.Live, Shards: total,
			Note: "the cluster's movers are moving them; follow with `sherdctl node drain " + id + " --wait`"}, asJSON)
	}
	left, err := followShardsOn(ctx, u, store, id, total, "draining "+id)
	if err != nil {
		return err
	}
	return u.nodeResult(nodeResult{Node: id, State: string(metadata.NodeDraining), Live: n.Live, Shards: left,
		Note: "drained: `sherdctl node remove " + id + "` forgets it"}, asJSON)
}

// followShardsOn shows a progress bar until no segment record puts a
// shard on node, and returns how many are left (0).
func followShardsOn(ctx context.Context, u *ui, store metadata.Store, node string, total int, desc string) (int, error) {
	bar := u.bar(int64(total), desc, false)
	defer bar.Close()
	for {
		nodes, err := call(ctx, store.ListNodes)
		if err != nil {
			return 0, err
		}
		c, err := call(ctx, func(ctx context.Context) (placementCensus, error) { return census(ctx, store, nodes) })
		if err != nil {
			return 0, err
		}
		left := c.PerNode[node]
		if left > total { // written before the drain began, committed since
			total = left
			bar.ChangeMax(total)
		}
		bar.Set(total - left)
		if left == 0 {
			bar.Finish()
			return 0, nil
		}
		if err := sleep(ctx); err != nil {
			return left, err
		}
	}
}

func nodeRemove(ctx context.Context, u *ui, store metadata.Store, id string, force, wait, asJSON bool) error {
	nodes, err := call(ctx, store.ListNodes)
	if err != nil {
		return err
	}
	n, err := findNode(nodes, id)
	if err != nil {
		return err
	}
	if n.State == metadata.NodeRemoved && !wait {
		return u.nodeResult(nodeResult{Node: id, State: string(n.State), Live: n.Live, Note: "already removed"}, asJSON)
	}
	c, err := call(ctx, func(ctx context.Context) (placementCensus, error) { return census(ctx, store, nodes) })
	if err != nil {
		return err
	}
	held := c.PerNode[id]
	switch {
	case force && n.Live && n.State != metadata.NodeDraining:
		return fmt.Errorf("refused: %s is up; drain it (`sherdctl node drain %s --wait`) or stop its process before --force", id, id)
	case !force && n.State != metadata.NodeDraining && n.State != metadata.NodeRemoved:
		return fmt.Errorf("refused: %s is %s; drain it first (`sherdctl node drain %s --wait`), or --force for a dead node", id, n.State, id)
	case !force && held > 0:
		return fmt.Errorf("refused: %s still holds %d shards; wait for the drain (`sherdctl node drain %s --wait`)", id, held, id)
	}
	if force {
		// The others must be able to take its shards.
		remaining := 0
		for _, m := range nodes {
			if m.ID != id && (m.State == metadata.NodeActive || m.State == "") {
				remaining++
			}
		}
		if remaining < c.MaxShards {
			return fmt.Errorf("refused: removing %s leaves %d active nodes, and segments need %d distinct nodes (k+m)", id, remaining, c.MaxShards)
		}
	}
	if n.State != metadata.NodeRemoved {
		if _, err := call(ctx, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, store.SetNodeState(ctx, id, metadata.NodeRemoved)
		}); err != nil {
			return err
		}
	}
	note := "removed: its process can be stopped and its disk wiped"
	if held > 0 {
		note = fmt.Sprintf("removed: its %d shards are being rebuilt on the other nodes", held)
		if wait {
			if _, err := followShardsOn(ctx, u, store, id, held, "rebuilding "+id+"'s shards"); err != nil {
				return err
			}
			note, held = "removed, and every shard it held is rebuilt elsewhere", 0
		}
	}
	return u.nodeResult(nodeResult{Node: id, State: string(metadata.NodeRemoved), Live: n.Live, Shards: held, Note: note}, asJSON)
}

func rebalanceCmd(u *ui) *cobra.Command {
	c := &cobra.Command{Use: "rebalance [--wait | --stop]", Short: "move shards to where placement puts them now (after adding a node), throttled", Args: exactArgs(0, "no arguments")}
	etcdURLs := etcdFlag(c, false)
	wait := c.Flags().Bool("wait", false, "follow until no shard is misplaced, then end the request")
	stop := c.Flags().Bool("stop", false, "withdraw the request (moves under way finish)")
	asJSON := c.Flags().Bool("json", false, "print the result as JSON")
	timeout := c.Flags().Duration("timeout", 0, "give up waiting after this long (0: never)")
	c.RunE = func(*cobra.Command, []string) error {
		if *wait && *stop {
			return usagef("rebalance: --wait and --stop exclude each other")
		}
		return withStoreUntil(*etcdURLs, *timeout, func(ctx context.Context, store metadata.Store) error {
			return rebalance(ctx, u, store, *wait, *stop, *asJSON)
		})
	}
	return c
}

type rebalanceResult struct {
	Request   string `json:"request,omitempty"`
	Misplaced int    `json:"misplaced"`
	Segments  int    `json:"segments"`
	State     string `json:"state"` // requested, done, stopped
}

func rebalance(ctx context.Context, u *ui, store metadata.Store, wait, stop, asJSON bool) error {
	out := func(r rebalanceResult) error {
		if asJSON {
			return u.json(r)
		}
		fmt.Fprintf(u.out, "rebalance %s: %d of the shards of %d segments misplaced\n", r.State, r.Misplaced, r.Segments)
		return nil
	}
	if stop {
		if _, err := call(ctx, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, store.DeleteRequest(ctx, "rebalance", "all")
		}); err != nil {
			return err
		}
		return out(rebalanceResult{State: "stopped"})
	}
	nodes, err := call(ctx, store.ListNodes)
	if err != nil {
		return err
	}
	c, err := call(ctx, func(ctx context.Context) (placementCensus, error) { return census(ctx, store, nodes) })
	if err != nil {
		return err
	}
	if c.Misplaced == 0 {
		return out(rebalanceResult{Misplaced: 0, Segments: c.Segments, State: "done (nothing to move)"})
	}
	r, err := postRequest(ctx, store, "rebalance", "all")
	if err != nil {
		return err
	}
	if !wait {
		return out(rebalanceResult{Request: r.ID, Misplaced: c.Misplaced, Segments: c.Segments, State: "requested (follow with --wait)"})
	}
	total := c.Misplaced
	bar := u.bar(int64(total), "rebalancing", false)
	defer bar.Close()
	for c.Misplaced > 0 {
		if err := sleep(ctx); err != nil {
			return err
		}
		if nodes, err = call(ctx, store.ListNodes); err != nil {
			return err
		}
		if c, err = call(ctx, func(ctx context.Context) (placementCensus, error) { return census(ctx, store, nodes) }); err != nil {
			return err
		}
		if c.Misplaced > total {
			total = c.Misplaced
			bar.ChangeMax(total)
		}
		bar.Set(total - c.Misplaced)
	}
	bar.Finish()
	if _, err := call(ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, store.DeleteRequest(ctx, "rebalance", "all")
	}); err != nil {
		return err
	}
	return out(rebalanceResult{Request: r.ID, Misplaced: 0, Segments: c.Segments, State: "done"})
}

func scrubCmd(u *ui) *cobra.Command {
	c := &cobra.Command{Use: "scrub [NODE | --all] [--wait]", Short: "start a scrub pass now on one node or all of them", Args: maxArgs(1, "at most one NODE")}
	etcdURLs := etcdFlag(c, false)
	all := c.Flags().Bool("all", false, "every node")
	wait := c.Flags().Bool("wait", false, "follow the passes until they end")
	asJSON := c.Flags().Bool("json", false, "print the result as JSON")
	timeout := c.Flags().Duration("timeout", 0, "give up waiting after this long (0: never)")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if (len(args) == 1) == *all {
			return usagef("scrub: name one NODE or --all")
		}
		target := "all"
		if len(args) == 1 {
			target = args[0]
		}
		return withStoreUntil(*etcdURLs, *timeout, func(ctx context.Context, store metadata.Store) error {
			return scrub(ctx, u, store, target, *wait, *asJSON)
		})
	}
	return c
}

type scrubResult struct {
	Request string            `json:"request"`
	Nodes   []string          `json:"nodes"`
	Done    bool              `json:"done"`
	Shards  map[string]int    `json:"shards,omitempty"`  // verified per node by the pass
	Corrupt map[string]int    `json:"corrupt,omitempty"` // quarantined per node
	Took    map[string]string `json:"took,omitempty"`
}

func scrub(ctx context.Context, u *ui, store metadata.Store, target string, wait, asJSON bool) error {
	nodes, err := call(ctx, store.ListNodes)
	if err != nil {
		return err
	}
	var targets []string
	if target == "all" {
		for _, n := range nodes {
			if n.Live && n.State != metadata.NodeRemoved {
				targets = append(targets, n.ID)
			}
		}
	} else {
		n, err := findNode(nodes, target)
		if err != nil {
			return err
		}
		if !n.Live {
			return fmt.Errorf("node %s is down: nothing can scrub it now", target)
		}
		targets = []string{target}
	}
	r, err := postRequest(ctx, store, "scrub", target)
	if err != nil {
		return err
	}
	res := scrubResult{Request: r.ID, Nodes: targets}
	if wait {
		bar := u.bar(int64(100*len(targets)), "scrubbing", false)
		defer bar.Close()
		for !res.Done {
			if err := sleep(ctx); err != nil {
				return err
			}
			sts, err := call(ctx, store.ListStatus)
			if err != nil {
				return err
			}
			done, pct := 0, 0
			res.Shards, res.Corrupt, res.Took = map[string]int{}, map[string]int{}, map[string]string{}
			for _, st := range sts {
				if st.Kind != "node" || st.Scrub == nil || !slices.Contains(targets, st.Name) {
					continue
				}
				switch {
				case st.Scrub.Request == r.ID:
					done++
					pct += 100
					res.Shards[st.Name], res.Corrupt[st.Name], res.Took[st.Name] = st.Scrub.LastShards, st.Scrub.LastCorrupt, st.Scrub.LastTook.Round(time.Millisecond).String()
				case st.Scrub.Running:
					pct += int(100 * st.Scrub.Fraction)
				}
			}
			bar.Set(pct)
			res.Done = done == len(targets)
		}
		bar.Finish()
	}
	if asJSON {
		return u.json(res)
	}
	if !res.Done {
		fmt.Fprintf(u.out, "scrub requested on %s (request %s); follow with `sherdctl status`\n", strings.Join(targets, ", "), r.ID)
		return nil
	}
	tw := tabwriter.NewWriter(u.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSHARDS VERIFIED\tCORRUPT (QUARANTINED, QUEUED FOR REPAIR)\tTOOK")
	for _, id := range targets {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", id, res.Shards[id], res.Corrupt[id], res.Took[id])
	}
	return tw.Flush()
}

// clusterKey is the key that signs calls to the nodes: SHERD_CLUSTER_KEY,
// or the file given (sherd server keeps it in DATA/cluster.key).
func clusterKey(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if k := os.Getenv("SHERD_CLUSTER_KEY"); k != "" {
		return []byte(k), nil
	}
	return nil, usagef("this command asks the nodes: set SHERD_CLUSTER_KEY or --cluster-key-file (sherd server: DATA/cluster.key)")
}

// nodeView is the members as sherdctl reaches them: who is live, and a
// client of each signed with the cluster key.
type nodeView struct {
	live    map[string]bool
	clients map[string]*client.Client
}

// viewNodes lists the members and dials each with key.
func viewNodes(ctx context.Context, store metadata.Store, key []byte) (nodeView, error) {
	nodes, err := call(ctx, store.ListNodes)
	if err != nil {
		return nodeView{}, err
	}
	v := nodeView{live: map[string]bool{}, clients: map[string]*client.Client{}}
	hc, err := clustertls.NodeClient(key, os.Getenv("SHERD_TLS_CA"))
	if err != nil {
		return nodeView{}, err
	}
	for _, n := range nodes {
		v.live[n.ID] = n.Live
		v.clients[n.ID] = client.New(n.Address, key, hc, nil)
	}
	return v, nil
}

// check asks the node holding shard i of seg about it.
func (v nodeView) check(ctx context.Context, seg metadata.Segment, i int, deep bool) shardReport {
	return checkShard(ctx, v.clients[seg.Nodes[i]], v.live[seg.Nodes[i]], seg, i, deep)
}

// parseS3 splits s3://bucket[/key-or-prefix].
func parseS3(arg string, needKey bool) (bucket, rest string, err error) {
	if !strings.HasPrefix(arg, "s3://") {
		return "", "", usagef("want s3://BUCKET%s, got %q", map[bool]string{true: "/KEY", false: "[/PREFIX]"}[needKey], arg)
	}
	bucket, rest, _ = strings.Cut(strings.TrimPrefix(arg, "s3://"), "/")
	if bucket == "" || (needKey && rest == "") {
		return "", "", usagef("want s3://BUCKET%s, got %q", map[bool]string{true: "/KEY", false: "[/PREFIX]"}[needKey], arg)
	}
	return bucket, rest, nil
}

func verifyCmd(u *ui) *cobra.Command {
	c := &cobra.Command{Use: "verify s3://BUCKET/KEY", Short: "re-read every shard of an object on its node: state and when last verified", Args: exactArgs(1, "s3://BUCKET/KEY")}
	etcdURLs := etcdFlag(c, false)
	keyFile := c.Flags().String("cluster-key-file", "", "file holding the cluster key (default: SHERD_CLUSTER_KEY)")
	noRead := c.Flags().Bool("no-read", false, "only compare each node's index with the record (no data read)")
	asJSON := c.Flags().Bool("json", false, "print the result as JSON")
	c.RunE = func(_ *cobra.Command, args []string) error {
		bucket, key, err := parseS3(args[0], true)
		if err != nil {
			return err
		}
		k, err := clusterKey(*keyFile)
		if err != nil {
			return err
		}
		return withStoreUntil(*etcdURLs, 0, func(ctx context.Context, store metadata.Store) error {
			return verify(ctx, u, store, k, bucket, key, !*noRead, *asJSON)
		})
	}
	return c
}

// shardReport is one shard's state as its node sees it.
type shardReport struct {
	Segment  string    `json:"segment"`
	Part     int       `json:"part"` // segment number within the object, from 1
	Index    int       `json:"index"`
	Node     string    `json:"node"`
	State    string    `json:"state"` // healthy, missing, corrupt, unknown (node down or not answering)
	Verified time.Time `json:"last_verified,omitzero"`
	Detail   string    `json:"detail,omitempty"`
}

type verifyResult struct {
	Bucket   string        `json:"bucket"`
	Key      string        `json:"key"`
	Size     int64         `json:"size"`
	Readable bool          `json:"readable"` // every segment has k healthy shards
	Shards   []shardReport `json:"shards"`
}

// checkShard asks a node about one shard: a full re-read (deep) or its
// index only.
func checkShard(ctx context.Context, cl *client.Client, live bool, seg metadata.Segment, i int, deep bool) shardReport {
	rep := shardReport{Segment: seg.ID, Index: i, Node: seg.Nodes[i]}
	if cl == nil || !live {
		rep.State, rep.Detail = "unknown", "node down"
		return rep
	}
	id := shard.ID{Segment: seg.ID, Index: i}
	var info shard.Info
	var err error
	if deep {
		info, err = call(ctx, func(ctx context.Context) (shard.Info, error) { return cl.Verify(ctx, id) })
	} else {
		info, err = call(ctx, func(ctx context.Context) (shard.Info, error) { return cl.Stat(ctx, id) })
	}
	rep.Verified = info.Verified
	switch {
	case errors.Is(err, shard.ErrNotFound):
		rep.State = "missing"
	case errors.Is(err, shard.ErrCorrupt):
		rep.State, rep.Detail = "corrupt", "a block fails its hash"
	case err != nil:
		rep.State, rep.Detail = "unknown", err.Error()
	case seg.ShardHashes[i] == "" || info.Hash != seg.ShardHashes[i]:
		rep.State, rep.Detail = "corrupt", "hash differs from the record"
	default:
		rep.State = "healthy"
	}
	return rep
}

// objectSegments returns obj's segments as their records say.
func objectSegments(ctx context.Context, store metadata.Store, obj metadata.Object) ([]metadata.Segment, error) {
	segs := make([]metadata.Segment, len(obj.Segments))
	for i, hint := range obj.Segments {
		rec, err := call(ctx, func(ctx context.Context) (metadata.Segment, error) {
			s, _, err := store.GetSegment(ctx, hint.ID)
			return s, err
		})
		switch {
		case errors.Is(err, metadata.ErrNoSuchSegment):
			segs[i] = hint
		case err != nil:
			return nil, err
		default:
			segs[i] = rec
		}
	}
	return segs, nil
}

func verify(ctx context.Context, u *ui, store metadata.Store, key []byte, bucket, objKey string, deep, asJSON bool) error {
	obj, err := call(ctx, func(ctx context.Context) (metadata.Object, error) { return store.GetObject(ctx, bucket, objKey) })
	if err != nil {
		return err
	}
	view, err := viewNodes(ctx, store, key)
	if err != nil {
		return err
	}
	segs, err := objectSegments(ctx, store, obj)
	if err != nil {
		return err
	}
	res := verifyResult{Bucket: bucket, Key: objKey, Size: obj.Size, Readable: true, Shards: []shardReport{}}
	var total int64
	for _, seg := range segs {
		total += int64(len(seg.Nodes))
	}
	bar := u.bar(total, "verifying shards", false)
	for p, seg := range segs {
		healthy := 0
		for i := range seg.Nodes {
			r := view.check(ctx, seg, i, deep)
			r.Part = p + 1
			if r.State == "healthy" {
				healthy++
			}
			res.Shards = append(res.Shards, r)
			bar.Add(1)
		}
		if healthy < seg.Profile.K {
			res.Readable = false
		}
	}
	bar.Finish()
	bar.Close()
	if asJSON {
		return u.json(res)
	}
	fmt.Fprintf(u.out, "s3://%s/%s: %d bytes, %d segments\n", bucket, objKey, obj.Size, len(segs))
	tw := tabwriter.NewWriter(u.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tSHARD\tNODE\tSTATE\tLAST VERIFIED\tDETAIL")
	for _, r := range res.Shards {
		when := "never"
		if !r.Verified.IsZero() {
			when = r.Verified.UTC().Format(time.RFC3339) + " (" + time.Since(r.Verified).Round(time.Second).String() + " ago)"
		}
		fmt.Fprintf(tw, "%d %s\t%d\t%s\t%s\t%s\t%s\n", r.Part, r.Segment[:12], r.Index, r.Node, r.State, when, r.Detail)
	}
	tw.Flush()
	if !res.Readable {
		return errors.New("the object is NOT readable: a segment has fewer than k healthy shards")
	}
	if slices.ContainsFunc(res.Shards, func(r shardReport) bool { return r.State != "healthy" }) {
		fmt.Fprintln(u.out, "readable, with bad shards: `sherdctl repair s3://"+bucket+"/"+objKey+"` queues them for repair")
	}
	return nil
}

func repairCmd(u *ui) *cobra.Command {
	c := &cobra.Command{Use: "repair [s3://BUCKET[/PREFIX]] [--wait]", Short: "an anti-entropy round now, cluster-wide or for a bucket or prefix", Args: maxArgs(1, "at most one s3://BUCKET[/PREFIX]")}
	etcdURLs := etcdFlag(c, false)
	keyFile := c.Flags().String("cluster-key-file", "", "file holding the cluster key, for a bucket or prefix (default: SHERD_CLUSTER_KEY)")
	wait := c.Flags().Bool("wait", false, "follow until the round (or the repairs it queued) are done")
	asJSON := c.Flags().Bool("json", false, "print the result as JSON")
	timeout := c.Flags().Duration("timeout", 0, "give up waiting after this long (0: never)")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return withStoreUntil(*etcdURLs, *timeout, func(ctx context.Context, store metadata.Store) error {
				return repairAll(ctx, u, store, *wait, *asJSON)
			})
		}
		bucket, prefix, err := parseS3(args[0], false)
		if err != nil {
			return err
		}
		k, err := clusterKey(*keyFile)
		if err != nil {
			return err
		}
		return withStoreUntil(*etcdURLs, *timeout, func(ctx context.Context, store metadata.Store) error {
			return repairScope(ctx, u, store, k, bucket, prefix, *wait, *asJSON)
		})
	}
	return c
}

type repairResult struct {
	Scope      string `json:"scope"`
	Request    string `json:"request,omitempty"`
	Repairers  int    `json:"repairers,omitempty"`
	Objects    int    `json:"objects,omitempty"`
	Segments   int    `json:"segments"`
	Shards     int    `json:"shards"`
	Missing    int    `json:"missing"`
	Wrong      int    `json:"wrong"` // corrupt or another hash than the record's
	Unknown    int    `json:"unknown,omitempty"`
	Rebuilt    int    `json:"rebuilt"`
	Unexpected int    `json:"unexpected,omitempty"`
	Waiting    int    `json:"waiting"`
	Done       bool   `json:"done"`
}

func (u *ui) repairResult(r repairResult, asJSON bool) error {
	if asJSON {
		return u.json(r)
	}
	if !r.Done {
		fmt.Fprintf(u.out, "repair of %s requested (request %s); follow with --wait or `sherdctl status`\n", r.Scope, r.Request)
		return nil
	}
	fmt.Fprintf(u.out, "repair of %s done: %d missing, %d wrong, %d rebuilt, %d waiting (a node down, or too few shards)", r.Scope, r.Missing, r.Wrong, r.Rebuilt, r.Waiting)
	if r.Repairers > 0 {
		fmt.Fprintf(u.out, "; %d unexpected shards (swept after the grace period); rounds by %d repairers", r.Unexpected, r.Repairers)
	} else {
		fmt.Fprintf(u.out, "; %d shards of %d segments in %d objects checked", r.Shards, r.Segments, r.Objects)
	}
	fmt.Fprintln(u.out)
	return nil
}

// freshRepairers are the repairers that reported within the last minute.
func freshRepairers(sts []metadata.ProcessStatus) []metadata.ProcessStatus {
	var out []metadata.ProcessStatus
	for _, st := range sts {
		if st.Kind == "repairer" && st.Repair != nil && time.Since(st.Time) < time.Minute {
			out = append(out, st)
		}
	}
	return out
}

// repairAll asks every repairer for an anti-entropy round now and, with
// wait, follows until each has reported a round begun after the request.
func repairAll(ctx context.Context, u *ui, store metadata.Store, wait, asJSON bool) error {
	sts, err := call(ctx, store.ListStatus)
	if err != nil {
		return err
	}
	if len(freshRepairers(sts)) == 0 {
		return errors.New("no repairer has reported in the last minute: is healing off (sherd node --repair-interval) or are the nodes down?")
	}
	r, err := postRequest(ctx, store, "antientropy", "all")
	if err != nil {
		return err
	}
	res := repairResult{Scope: "the cluster", Request: r.ID}
	if !wait {
		return u.repairResult(res, asJSON)
	}
	bar := u.bar(int64(len(freshRepairers(sts))), "anti-entropy rounds", false)
	defer bar.Close()
	for !res.Done {
		if err := sleep(ctx); err != nil {
			return err
		}
		sts, err := call(ctx, store.ListStatus)
		if err != nil {
			return err
		}
		reps := freshRepairers(sts)
		done := 0
		res.Repairers, res.Missing, res.Wrong, res.Rebuilt, res.Unexpected, res.Waiting = len(reps), 0, 0, 0, 0, 0
		for _, st := range reps {
			if st.Repair.Request != r.ID || st.Repair.LastRound == nil {
				continue
			}
			done++
			lr := st.Repair.LastRound
			res.Missing += lr.Missing
			res.Wrong += lr.Wrong
			res.Rebuilt += lr.Rebuilt
			res.Unexpected += lr.Unexpected
			res.Waiting += lr.Waiting
		}
		bar.ChangeMax(len(reps))
		bar.Set(done)
		res.Done = done == len(reps) && done > 0
	}
	bar.Finish()
	return u.repairResult(res, asJSON)
}

// repairScope checks every shard of the objects under bucket/prefix on
// its node (the index's hash against the record, as anti-entropy does),
// queues the bad ones for repair and, with wait, follows until they are
// healthy.
func repairScope(ctx context.Context, u *ui, store metadata.Store, key []byte, bucket, prefix string, wait, asJSON bool) error {
	if _, err := call(ctx, func(ctx context.Context) (metadata.Bucket, error) { return store.GetBucket(ctx, bucket) }); err != nil {
		return err
	}
	view, err := viewNodes(ctx, store, key)
	if err != nil {
		return err
	}
	res := repairResult{Scope: "s3://" + bucket + "/" + prefix}
	type bad struct {
		seg    metadata.Segment
		shards []int
	}
	var queued []bad
	bar := u.bar(-1, "checking objects", false)
	after := ""
	for {
		page, err := call(ctx, func(ctx context.Context) (metadata.ListResult, error) {
			return store.ListObjects(ctx, bucket, metadata.ListOptions{Prefix: prefix, StartAfter: after, MaxKeys: 1000})
		})
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			obj, err := call(ctx, func(ctx context.Context) (metadata.Object, error) { return store.GetObject(ctx, bucket, o.Key) })
			if errors.Is(err, metadata.ErrNoSuchKey) {
				continue
			} else if err != nil {
				return err
			}
			segs, err := objectSegments(ctx, store, obj)
			if err != nil {
				return err
			}
			res.Objects++
			for _, seg := range segs {
				res.Segments++
				var shards []int
				for i := range seg.Nodes {
					res.Shards++
					switch view.check(ctx, seg, i, false).State {
					case "missing":
						res.Missing++
						shards = append(shards, i)
					case "corrupt":
						res.Wrong++
						shards = append(shards, i)
					case "unknown":
						res.Unknown++
					}
				}
				if len(shards) > 0 {
					e := metadata.RepairEntry{Segment: seg, Shards: shards, Reason: "sherdctl repair " + res.Scope}
					if _, err := call(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, store.QueueRepair(ctx, e) }); err != nil {
						return err
					}
					queued = append(queued, bad{seg, shards})
				}
			}
			bar.Add(1)
		}
		if !page.IsTruncated {
			break
		}
		after = page.NextMarker
	}
	bar.Finish()
	bar.Close()
	res.Done = !wait || len(queued) == 0
	if wait && len(queued) > 0 {
		total := 0
		for _, b := range queued {
			total += len(b.shards)
		}
		bar := u.bar(int64(total), "repairing", false)
		defer bar.Close()
		for {
			healthy := 0
			for _, b := range queued {
				rec, err := call(ctx, func(ctx context.Context) (metadata.Segment, error) {
					s, _, err := store.GetSegment(ctx, b.seg.ID)
					return s, err
				})
				if errors.Is(err, metadata.ErrNoSuchSegment) {
					healthy += len(b.shards) // deleted meanwhile: nothing to repair
					continue
				} else if err != nil {
					return err
				}
				for _, i := range b.shards {
					if view.check(ctx, rec, i, false).State == "healthy" {
						healthy++
					}
				}
			}
			bar.Set(healthy)
			if healthy == total {
				res.Rebuilt, res.Done = total, true
				break
			}
			if err := sleep(ctx); err != nil {
				return err
			}
			if view, err = viewNodes(ctx, store, key); err != nil {
				return err
			}
		}
		bar.Finish()
	} else if len(queued) > 0 {
		res.Waiting = res.Missing + res.Wrong
	}
	return u.repairResult(res, asJSON)
}
