// Package client talks to a storage node's HTTP API, signing every request with the cluster key.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/internal/reqid"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode/wire"
)

// Client is a storage node's API client; it implements shard.Store.
// It is safe for concurrent use.
type Client struct {
	base string
	key  []byte
	hc   *http.Client
	now  func() time.Time
}

// New returns a client for the node at baseURL (https://host:port, or
// http:// for a node on plain HTTP), the URL the node advertises: every
// request is signed for that host, and the node refuses one addressed to
// another. A nil hc means http.DefaultClient; now nil means time.Now.
func New(baseURL string, key []byte, hc *http.Client, now func() time.Time) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	if now == nil {
		now = time.Now
	}
	return &Client{base: baseURL, key: key, hc: hc, now: now}
}

// BaseURL is the node's address.
func (c *Client) BaseURL() string { return c.base }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, hdr http.Header) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if id := reqid.From(ctx); id != "" {
		req.Header.Set(reqid.Header, id)
	}
	wire.SignRequest(req, c.key, c.now())
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, responseError(method, c.base+path, resp)
	}
	return resp, nil
}

// responseError turns an error answer into an error wrapping its sentinel.
func responseError(method, u string, resp *http.Response) error {
	var eb wire.ErrorBody
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb)
	if eb.Code == "" { // HEAD answers have no body
		switch resp.StatusCode {
		case http.StatusNotFound:
			eb.Code = wire.CodeNotFound
		case http.StatusBadRequest:
			eb.Code = wire.CodeInvalid
		case http.StatusForbidden:
			eb.Code = wire.CodeUnauthorized
		}
	}
	if s := wire.ErrorForCode(eb.Code); s != nil {
		return fmt.Errorf("%s %s: %s: %w", method, u, eb.Message, s)
	}
	return fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, eb.Message)
}

func shardPath(id shard.ID) string { return "/v1/shards/" + id.String() }

// valid rejects malformed ids before they are put in a URL.
func valid(id shard.ID) error {
	_, err := shard.ParseID(id.String())
	return err
}

// Put implements shard.Store. The body streams (chunked).
func (c *Client) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	return c.put(ctx, id, r, url.Values{"block": {strconv.Itoa(blockLen)}})
}

// Replace implements shard.Store.
func (c *Client) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	q := url.Values{"block": {strconv.Itoa(blockLen)}, "replace": {"1"}}
	if want != "" {
		q.Set("want", want)
	}
	return c.put(ctx, id, r, q)
}

// put streams a shard with the query q (a new shard or a replacement).
func (c *Client) put(ctx context.Context, id shard.ID, r io.Reader, q url.Values) (shard.Info, error) {
	if err := valid(id); err != nil {
		return shard.Info{}, err
	}
	resp, err := c.do(ctx, http.MethodPut, shardPath(id), q, io.NopCloser(r), nil)
	if err != nil {
		return shard.Info{}, err
	}
	defer resp.Body.Close()
	var info shard.Info
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return info, fmt.Errorf("put %s: %w", id, err)
	}
	return info, nil
}

// Open implements shard.Store.
func (c *Client) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	if err := valid(id); err != nil {
		return nil, err
	}
	if n == 0 {
		info, err := c.Stat(ctx, id)
		if err != nil {
			return nil, err
		}
		if off < 0 || off > info.Size {
			return nil, fmt.Errorf("open %s: offset %d: %w", id, off, shard.ErrInvalid)
		}
		return io.NopCloser(http.NoBody), nil
	}
	hdr := http.Header{}
	if off != 0 || n > 0 {
		rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
		if n > 0 {
			rng += strconv.FormatInt(off+n-1, 10)
		}
		hdr.Set("Range", rng)
	}
	resp, err := c.do(ctx, http.MethodGet, shardPath(id), nil, nil, hdr)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Stat implements shard.Store.
func (c *Client) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	if err := valid(id); err != nil {
		return shard.Info{}, err
	}
	resp, err := c.do(ctx, http.MethodHead, shardPath(id), nil, nil, nil)
	if err != nil {
		return shard.Info{}, err
	}
	resp.Body.Close()
	info := shard.Info{ID: id.String(), Hash: resp.Header.Get(wire.HeaderHash)}
	info.Size, _ = strconv.ParseInt(resp.Header.Get(wire.HeaderSize), 10, 64)
	info.BlockLen, _ = strconv.Atoi(resp.Header.Get(wire.HeaderBlock))
	info.ModTime, _ = http.ParseTime(resp.Header.Get("Last-Modified"))
	info.Verified, _ = time.Parse(time.RFC3339Nano, resp.Header.Get(wire.HeaderVerified))
	return info, nil
}

// Verify asks the node to re-read shard id whole and check every block
// hash and the whole-file hash now. It returns the shard's description,
// with Verified the time of the check before this one. Errors:
// shard.ErrNotFound, shard.ErrCorrupt.
func (c *Client) Verify(ctx context.Context, id shard.ID) (shard.Info, error) {
	if err := valid(id); err != nil {
		return shard.Info{}, err
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/verify/"+id.String(), nil, nil, nil)
	if err != nil {
		return shard.Info{}, err
	}
	defer resp.Body.Close()
	var info shard.Info
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return info, fmt.Errorf("verify %s: %w", id, err)
	}
	return info, nil
}

// Delete implements shard.Store.
func (c *Client) Delete(ctx context.Context, id shard.ID) error {
	if err := valid(id); err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodDelete, shardPath(id), nil, nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Leaf implements shard.Store.
func (c *Client) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/leaves/"+strconv.FormatUint(uint64(leaf), 10), nil, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []shard.Info
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("leaf %d: %w", leaf, err)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, nil
}

// Children implements shard.Store.
func (c *Client) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	resp, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/tree/%d/%d", level, idx), nil, nil, nil)
	if err != nil {
		return [merkle.Fanout]merkle.Digest{}, err
	}
	defer resp.Body.Close()
	var hexes []string
	if err := json.NewDecoder(resp.Body).Decode(&hexes); err != nil {
		return [merkle.Fanout]merkle.Digest{}, fmt.Errorf("tree %d/%d: %w", level, idx, err)
	}
	return wire.DigestsFromHex(hexes)
}

// Health reports whether the node answers its health endpoint.
func (c *Client) Health(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/health", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health %s: HTTP %d", c.base, resp.StatusCode)
	}
	return nil
}
