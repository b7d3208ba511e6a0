// Command sherdctl is Sherd's operator CLI: cluster status from etcd, presigned URLs, webhooks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/notify"
	"github.com/sherdstore/sherd/repair"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// usageError is a command line that cannot be carried out as written: a
// flag or argument that is unknown, missing, misplaced or left over.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes one command line and returns the exit code: 0, 1 for a
// failure, 2 for a usage error. Flags may stand anywhere on the line
// (before, between or after the arguments); anything the command does not
// take is refused, never ignored.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(&ui{out: stdout, errw: stderr, tty: isTerminal(stdout)})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "sherdctl:", err)
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintln(stderr, "Run 'sherdctl --help' for usage.")
		return 2
	}
	return 1
}

// args validators that answer usage errors.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %s, got %d argument(s): %q", names, len(args), args)
		}
		return nil
	}
}

// needSubcommand runs for a command line that names no (known) subcommand.
func needSubcommand(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], c.CommandPath())
	}
	return usagef("%s needs a command: %s", c.CommandPath(), strings.Join(subcommandNames(c), ", "))
}

func subcommandNames(c *cobra.Command) []string {
	var out []string
	for _, sc := range c.Commands() {
		if sc.IsAvailableCommand() {
			out = append(out, sc.Name())
		}
	}
	return out
}

// isTerminal says whether w is a terminal (progress bars are drawn only
// then).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// signalContext ends at SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newRoot(u *ui) *cobra.Command {
	stdout := u.out
	root := &cobra.Command{
		Use:           "sherdctl",
		Short:         "Sherd's operator CLI: cluster status, presigned URLs, webhooks",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
	}
	root.RunE = needSubcommand
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(statusCmd(u), presignCmd(stdout), notifyCmd(stdout), whatIfCmd(u),
		nodeCmd(u), rebalanceCmd(u), scrubCmd(u), verifyCmd(u), repairCmd(u))
	return root
}

func etcdFlag(c *cobra.Command, persistent bool) *string {
	fs := c.Flags()
	if persistent {
		fs = c.PersistentFlags()
	}
	return fs.String("etcd", os.Getenv("SHERD_ETCD"), "etcd client URLs, comma-separated (or SHERD_ETCD)")
}

func statusCmd(u *ui) *cobra.Command {
	c := &cobra.Command{Use: "status", Short: "nodes (live, down, draining; disk used), segments by healthy shards, backlogs, last anti-entropy round and scrub pass", Args: exactArgs(0, "no arguments")}
	etcdURLs := etcdFlag(c, false)
	asJSON := c.Flags().Bool("json", false, "print the report as JSON")
	c.RunE = func(*cobra.Command, []string) error {
		return withStoreUntil(*etcdURLs, 0, func(ctx context.Context, store metadata.Store) error {
			rep, err := call(ctx, func(ctx context.Context) (statusReport, error) { return gatherStatus(ctx, store, time.Now()) })
			if err != nil {
				return err
			}
			if *asJSON {
				return u.json(rep)
			}
			return printStatus(u.out, rep)
		})
	}
	return c
}

func whatIfCmd(u *ui) *cobra.Command {
	stdout := u.out
	c := &cobra.Command{Use: "what-if --lose NODE[,NODE…]", Short: "which objects losing those nodes now would make unreadable, from metadata alone", Args: exactArgs(0, "no arguments")}
	etcdURLs := etcdFlag(c, false)
	lose := c.Flags().StringSlice("lose", nil, "nodes to imagine lost, comma-separated (required)")
	asJSON := c.Flags().Bool("json", false, "print the report as JSON")
	c.RunE = func(*cobra.Command, []string) error {
		if len(*lose) == 0 {
			return usagef("--lose NODE[,NODE…] is required")
		}
		return withStore(*etcdURLs, func(ctx context.Context, store metadata.Store) error {
			rep, err := whatIf(ctx, u, store, *lose)
			if err != nil {
				return err
			}
			return printWhatIf(stdout, rep, *asJSON)
		})
	}
	return c
}

// whatIfReport is what losing some nodes now would do.
type whatIfReport struct {
	Lose           []string `json:"lose"`
	AlreadyDown    []string `json:"already_down"` // counted as lost too
	Objects        int      `json:"objects"`
	Bytes          int64    `json:"bytes"`
	Unreadable     int      `json:"unreadable"` // fewer than k shards left in some segment
	UnreadableSize int64    `json:"unreadable_bytes"`
	Edge           int      `json:"edge"` // exactly k shards left in some segment, none fewer
	EdgeSize       int64    `json:"edge_bytes"`
	Examples       []string `json:"unreadable_examples,omitempty"` // up to 20 bucket/key
}

// whatIf counts, from segment records alone, the objects that losing the
// nodes in lose (and those already down) would leave unreadable or with no
// redundancy. Unknown node ids are refused.
func whatIf(ctx context.Context, u *ui, store metadata.Store, lose []string) (whatIfReport, error) {
	nodes, err := store.ListNodes(ctx)
	if err != nil {
		return whatIfReport{}, err
	}
	rep := whatIfReport{Lose: lose, AlreadyDown: []string{}}
	lost := map[string]bool{}
	known := map[string]bool{}
	for _, n := range nodes {
		known[n.ID] = true
		if !n.Live {
			lost[n.ID] = true
			rep.AlreadyDown = append(rep.AlreadyDown, n.ID)
		}
	}
	for _, id := range lose {
		if !known[id] {
			ids := slices.Sorted(maps.Keys(known))
			return rep, usagef("unknown node %q (the nodes are %s)", id, strings.Join(ids, ", "))
		}
		lost[id] = true
	}
	records := map[string]metadata.Segment{}
	if _, err := store.ScanSegments(ctx, func(seg metadata.Segment) error {
		records[seg.ID] = seg
		return nil
	}); err != nil {
		return rep, err
	}
	available := func(node string) bool { return !lost[node] }
	buckets, err := store.ListBuckets(ctx)
	if err != nil {
		return rep, err
	}
	bar := u.bar(int64(len(records)), "segments of objects examined", false)
	defer bar.Close()
	for _, b := range buckets {
		after := ""
		for {
			page, err := store.ListObjects(ctx, b.Name, metadata.ListOptions{StartAfter: after, MaxKeys: 1000})
			if err != nil {
				return rep, err
			}
			for _, o := range page.Objects {
				obj, err := store.GetObject(ctx, b.Name, o.Key)
				if errors.Is(err, metadata.ErrNoSuchKey) {
					continue // deleted meanwhile
				} else if err != nil {
					return rep, err
				}
				segs := make([]metadata.Segment, len(obj.Segments))
				for i, hint := range obj.Segments {
					segs[i] = hint
					if rec, ok := records[hint.ID]; ok {
						segs[i] = rec // the record is authoritative
					}
				}
				rep.Objects++
				rep.Bytes += obj.Size
				bar.Add(len(segs))
				switch m := repair.Margin(segs, available); {
				case m < 0:
					rep.Unreadable++
					rep.UnreadableSize += obj.Size
					if len(rep.Examples) < 20 {
						rep.Examples = append(rep.Examples, b.Name+"/"+obj.Key)
					}
				case m == 0:
					rep.Edge++
					rep.EdgeSize += obj.Size
				}
			}
			if !page.IsTruncated {
				break
			}
			after = page.NextMarker
		}
	}
	return rep, nil
}

func printWhatIf(stdout io.Writer, rep whatIfReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "losing %s", strings.Join(rep.Lose, ", "))
	if len(rep.AlreadyDown) > 0 {
		fmt.Fprintf(stdout, " (and %s, already down)", strings.Join(rep.AlreadyDown, ", "))
	}
	fmt.Fprintf(stdout, " now, of %d objects (%s):\n", rep.Objects, humanize.IBytes(uint64(rep.Bytes)))
	fmt.Fprintf(stdout, "  unreadable (fewer than k shards left): %d objects, %s\n", rep.Unreadable, humanize.IBytes(uint64(rep.UnreadableSize)))
	fmt.Fprintf(stdout, "  at the edge (exactly k shards left):   %d objects, %s\n", rep.Edge, humanize.IBytes(uint64(rep.EdgeSize)))
	for _, k := range rep.Examples {
		fmt.Fprintf(stdout, "  unreadable: %s\n", k)
	}
	return nil
}

func presignCmd(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "presign s3://BUCKET/KEY", Short: "a presigned GET or PUT URL, signed locally", Args: exactArgs(1, "s3://BUCKET/KEY")}
	method := c.Flags().String("method", "GET", "GET or PUT")
	expires := c.Flags().Duration("expires", time.Hour, "validity (at most 168h)")
	endpoint := c.Flags().String("endpoint", "http://127.0.0.1:9000", "S3 endpoint")
	region := c.Flags().String("region", "us-east-1", "region")
	c.RunE = func(_ *cobra.Command, args []string) error {
		return presign(stdout, args[0], *method, *expires, *endpoint, *region)
	}
	return c
}

// notifyCmd configures a bucket's webhooks (stored with the bucket in
// etcd; every gateway delivers from the etcd queue).
func notifyCmd(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "notify", Short: "a bucket's webhooks: set, show, clear; the events given up on: dead", Args: cobra.ArbitraryArgs, RunE: needSubcommand}
	etcdURLs := etcdFlag(c, true)
	set := &cobra.Command{Use: "set BUCKET --url URL", Short: "add or replace a webhook", Args: exactArgs(1, "BUCKET")}
	hookURL := set.Flags().String("url", "", "webhook URL (http or https), required")
	setID := set.Flags().String("id", "webhook", "configuration id")
	events := set.Flags().String("events", "s3:ObjectCreated:*,s3:ObjectRemoved:*", "event types, comma-separated")
	prefix := set.Flags().String("prefix", "", "only keys with this prefix")
	suffix := set.Flags().String("suffix", "", "only keys with this suffix")
	set.RunE = func(_ *cobra.Command, args []string) error {
		if *hookURL == "" {
			return usagef("notify set: --url is required")
		}
		return updateWebhooks(*etcdURLs, args[0], func(cfg *notify.Config) {
			cfg.Webhooks = slices.DeleteFunc(cfg.Webhooks, func(w notify.Webhook) bool { return w.ID == *setID })
			cfg.Webhooks = append(cfg.Webhooks, notify.Webhook{ID: *setID, URL: *hookURL, Events: strings.Split(*events, ","), Prefix: *prefix, Suffix: *suffix})
		})
	}
	show := &cobra.Command{Use: "show BUCKET", Short: "print the webhooks as JSON", Args: exactArgs(1, "BUCKET")}
	show.RunE = func(_ *cobra.Command, args []string) error { return showWebhooks(stdout, *etcdURLs, args[0]) }
	clr := &cobra.Command{Use: "clear BUCKET [--id ID]", Short: "remove one webhook (--id) or all", Args: exactArgs(1, "BUCKET")}
	clearID := clr.Flags().String("id", "", "configuration id (default: all)")
	clr.RunE = func(_ *cobra.Command, args []string) error {
		return updateWebhooks(*etcdURLs, args[0], func(cfg *notify.Config) {
			cfg.Webhooks = slices.DeleteFunc(cfg.Webhooks, func(w notify.Webhook) bool { return *clearID == "" || w.ID == *clearID })
		})
	}
	dead := &cobra.Command{Use: "dead [--limit N] [--json]", Short: "the events given up on (too many attempts, or too old), oldest first", Args: exactArgs(0, "no arguments")}
	limit := dead.Flags().Int("limit", 100, "print at most this many")
	asJSON := dead.Flags().Bool("json", false, "print them as JSON")
	dead.RunE = func(_ *cobra.Command, _ []string) error {
		if *limit < 1 {
			return usagef("notify dead: --limit must be at least 1")
		}
		return withStore(*etcdURLs, func(ctx context.Context, store metadata.Store) error {
			return printDeadEvents(ctx, stdout, store, *limit, *asJSON)
		})
	}
	c.AddCommand(set, show, clr, dead)
	return c
}

// printDeadEvents prints the dead-letter list of webhook events.
func printDeadEvents(ctx context.Context, stdout io.Writer, store metadata.Store, limit int, asJSON bool) error {
	count, dropped, err := store.DeadEventCount(ctx)
	if err != nil {
		return err
	}
	dead, err := store.ListDeadEvents(ctx, limit)
	if err != nil {
		return err
	}
	if asJSON {
		if dead == nil {
			dead = []metadata.DeadEvent{}
		}
		out, _ := json.MarshalIndent(dead, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return nil
	}
	fmt.Fprintf(stdout, "%d dead letters (%d dropped, oldest first, when the list was full)\n", count, dropped)
	for _, d := range dead {
		fmt.Fprintf(stdout, "%s  %-8s  %2d attempts  %s %s/%s  to %s", d.Died.UTC().Format(time.RFC3339), d.Reason, d.Attempts, d.Name, d.Bucket, d.Key, d.URL)
		if d.LastError != "" {
			fmt.Fprintf(stdout, "  last error: %s", d.LastError)
		}
		fmt.Fprintln(stdout)
	}
	if count > len(dead) {
		fmt.Fprintf(stdout, "(%d more; --limit)\n", count-len(dead))
	}
	return nil
}

// withStore connects to etcd and runs f with the metadata store and a
// context of 30 s (every etcd call has that deadline).
func withStore(etcdURLs string, f func(ctx context.Context, store metadata.Store) error) error {
	return withStoreUntil(etcdURLs, callTimeout, f)
}

func showWebhooks(stdout io.Writer, etcdURLs, bucket string) error {
	return withStore(etcdURLs, func(ctx context.Context, store metadata.Store) error {
		return printWebhooks(ctx, stdout, store, bucket)
	})
}

func printWebhooks(ctx context.Context, stdout io.Writer, store metadata.Store, bucket string) error {
	b, err := store.GetBucket(ctx, bucket)
	if err != nil {
		return err
	}
	cfg, err := notify.ParseConfig(b.Notify)
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(cfg, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return nil
}

// updateWebhooks applies change to a bucket's webhook configuration and
// stores it if it is still valid.
func updateWebhooks(etcdURLs, bucket string, change func(*notify.Config)) error {
	return withStore(etcdURLs, func(ctx context.Context, store metadata.Store) error {
		return store.UpdateBucket(ctx, bucket, func(b *metadata.Bucket) error {
			cfg, err := notify.ParseConfig(b.Notify)
			if err != nil {
				return err
			}
			change(&cfg)
			out, _ := json.Marshal(cfg)
			if _, err := notify.ParseConfig(string(out)); err != nil {
				return err
			}
			if len(cfg.Webhooks) == 0 {
				out = nil
			}
			b.Notify = string(out)
			return nil
		})
	})
}

func presign(stdout io.Writer, target, method string, expires time.Duration, endpoint, region string) error {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(target, "s3://"), "/")
	if !strings.HasPrefix(target, "s3://") || !ok || bucket == "" || key == "" {
		return usagef("presign: want s3://BUCKET/KEY, got %q", target)
	}
	if expires < time.Second || expires > 7*24*time.Hour {
		return usagef("presign: --expires must be between 1s and 168h")
	}
	method = strings.ToUpper(method)
	if method != http.MethodGet && method != http.MethodPut {
		return usagef("presign: --method must be GET or PUT")
	}
	ak, sk := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if ak == "" || sk == "" {
		ak, sk = os.Getenv("SHERD_ROOT_USER"), os.Getenv("SHERD_ROOT_PASSWORD")
	}
	if ak == "" || sk == "" {
		return fmt.Errorf("presign: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or SHERD_ROOT_USER/SHERD_ROOT_PASSWORD")
	}
	c := s3.New(s3.Options{Region: region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
	pc := s3.NewPresignClient(c, s3.WithPresignExpires(expires))
	ctx := context.Background()
	var url string
	switch method {
	case http.MethodGet:
		r, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			return err
		}
		url = r.URL
	case http.MethodPut:
		r, err := pc.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			return err
		}
		url = r.URL
	}
	fmt.Fprintln(stdout, url)
	return nil
}
