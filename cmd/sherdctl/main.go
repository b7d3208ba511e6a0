// Command sherdctl is Sherd's operator CLI: cluster status from etcd, presigned URLs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/metadata"
)

const usage = `usage:
  sherdctl status  --etcd URLS
  sherdctl presign s3://BUCKET/KEY [--method GET|PUT] [--expires 1h] [--endpoint http://127.0.0.1:9000]
  sherdctl notify  --etcd URLS set BUCKET --url URL [--id ID] [--events s3:ObjectCreated:*,s3:ObjectRemoved:*] [--prefix P] [--suffix S]
  sherdctl notify  --etcd URLS show BUCKET
  sherdctl notify  --etcd URLS clear BUCKET [--id ID]

Credentials for presign: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else
SHERD_ROOT_USER / SHERD_ROOT_PASSWORD.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "status":
		err = status(os.Args[2:])
	case "presign":
		err = presign(os.Args[2:])
	case "notify":
		err = notify(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sherdctl:", err)
		os.Exit(1)
	}
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	etcdURLs := fs.String("etcd", os.Getenv("SHERD_ETCD"), "etcd client URLs (or SHERD_ETCD)")
	fs.Parse(args)
	if *etcdURLs == "" {
		return fmt.Errorf("status: --etcd is required")
	}
	cli, err := daemon.EtcdClient(*etcdURLs)
	if err != nil {
		return err
	}
	defer cli.Close()
	store := daemon.NewMetadataStore(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := store.ListNodes(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tLIVE\tADDRESS\tZONE\tSTARTED")
	live := 0
	for _, n := range nodes {
		l := "DOWN"
		if n.Live {
			l, live = "up", live+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.State, l, n.Address, n.Zone, n.Started.Format(time.RFC3339))
	}
	tw.Flush()
	repairs, err := store.ListRepairs(ctx, 10000)
	if err != nil {
		return err
	}
	gc, err := store.ListGC(ctx, 10000)
	if err != nil {
		return err
	}
	events, err := store.ListEvents(ctx, 10000)
	if err != nil {
		return err
	}
	shards, failing := 0, 0
	for _, r := range repairs {
		shards += len(r.Shards)
	}
	for _, e := range events {
		if e.LastError != "" {
			failing++
		}
	}
	fmt.Printf("\n%d of %d nodes live; repair queue: %d segments (%d shards); gc queue: %d entries; notifications waiting: %d (%d after a failed attempt)\n",
		live, len(nodes), len(repairs), shards, len(gc), len(events), failing)
	return nil
}

// notify configures a bucket's webhooks (stored with the bucket in etcd;
// every gateway delivers from the etcd queue).
func notify(args []string) error {
	fs := flag.NewFlagSet("notify", flag.ExitOnError)
	etcdURLs := fs.String("etcd", os.Getenv("SHERD_ETCD"), "etcd client URLs (or SHERD_ETCD)")
	fs.Parse(args)
	rest := fs.Args()
	if *etcdURLs == "" || len(rest) < 2 {
		return fmt.Errorf("notify: want --etcd URLS set|show|clear BUCKET [options]")
	}
	verb, bucket := rest[0], rest[1]
	opts := flag.NewFlagSet("notify "+verb, flag.ExitOnError)
	url := opts.String("url", "", "webhook URL (http or https)")
	id := opts.String("id", "webhook", "configuration id")
	events := opts.String("events", "s3:ObjectCreated:*,s3:ObjectRemoved:*", "event types, comma-separated")
	prefix := opts.String("prefix", "", "only keys with this prefix")
	suffix := opts.String("suffix", "", "only keys with this suffix")
	opts.Parse(rest[2:])
	cli, err := daemon.EtcdClient(*etcdURLs)
	if err != nil {
		return err
	}
	defer cli.Close()
	store := daemon.NewMetadataStore(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch verb {
	case "show":
		b, err := store.GetBucket(ctx, bucket)
		if err != nil {
			return err
		}
		cfg, err := gateway.ParseNotifyConfig(b.Notify)
		if err != nil {
			return err
		}
		out, _ := json.MarshalIndent(cfg, "", "  ")
		fmt.Println(string(out))
		return nil
	case "set", "clear":
	default:
		return fmt.Errorf("notify: unknown verb %q", verb)
	}
	return store.UpdateBucket(ctx, bucket, func(b *metadata.Bucket) error {
		cfg, err := gateway.ParseNotifyConfig(b.Notify)
		if err != nil {
			return err
		}
		cfg.Webhooks = slices.DeleteFunc(cfg.Webhooks, func(w gateway.Webhook) bool {
			return verb == "clear" && (*id == "webhook" || w.ID == *id) || w.ID == *id
		})
		if verb == "set" {
			cfg.Webhooks = append(cfg.Webhooks, gateway.Webhook{ID: *id, URL: *url, Events: strings.Split(*events, ","), Prefix: *prefix, Suffix: *suffix})
		}
		out, _ := json.Marshal(cfg)
		if _, err := gateway.ParseNotifyConfig(string(out)); err != nil {
			return err
		}
		if len(cfg.Webhooks) == 0 {
			out = nil
		}
		b.Notify = string(out)
		return nil
	})
}

func presign(args []string) error {
	fs := flag.NewFlagSet("presign", flag.ExitOnError)
	method := fs.String("method", "GET", "GET or PUT")
	expires := fs.Duration("expires", time.Hour, "validity (at most 168h)")
	endpoint := fs.String("endpoint", "http://127.0.0.1:9000", "S3 endpoint")
	region := fs.String("region", "us-east-1", "region")
	// Accept the target before or after the flags.
	var target string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	fs.Parse(args)
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(target, "s3://"), "/")
	if !strings.HasPrefix(target, "s3://") || !ok || bucket == "" || key == "" {
		return fmt.Errorf("presign: want s3://BUCKET/KEY, got %q", target)
	}
	if *expires <= 0 || *expires > 7*24*time.Hour {
		return fmt.Errorf("presign: --expires must be between 1s and 168h")
	}
	ak, sk := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if ak == "" || sk == "" {
		ak, sk = os.Getenv("SHERD_ROOT_USER"), os.Getenv("SHERD_ROOT_PASSWORD")
	}
	if ak == "" || sk == "" {
		return fmt.Errorf("presign: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or SHERD_ROOT_USER/SHERD_ROOT_PASSWORD")
	}
	c := s3.New(s3.Options{Region: *region, BaseEndpoint: aws.String(*endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
	pc := s3.NewPresignClient(c, s3.WithPresignExpires(*expires))
	ctx := context.Background()
	var url string
	switch strings.ToUpper(*method) {
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
	default:
		return fmt.Errorf("presign: --method must be GET or PUT")
	}
	fmt.Println(url)
	return nil
}
