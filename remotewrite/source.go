package remotewrite

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// chunkedReadLimit bounds one frame of a streamed remote-read answer, as
// Prometheus's own remote_read default does.
const chunkedReadLimit = 50e6

// source reads raw samples, with their original timestamps, from a
// Prometheus by remote read (streamed XOR chunks).
type source struct {
	url    string
	client remote.ReadClient
}

func newSource(base string, timeout time.Duration, userAgent string) (*source, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/api/v1/read")
	if err != nil {
		return nil, fmt.Errorf("source URL %q: %w", base, err)
	}
	c, err := remote.NewReadClient("prom_remote_write", &remote.ClientConfig{
		URL:                   &config_util.URL{URL: u},
		Timeout:               model.Duration(timeout),
		HTTPClientConfig:      config_util.DefaultHTTPClientConfig,
		ChunkedReadLimit:      chunkedReadLimit,
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS},
	}, config_util.WithUserAgent(userAgent))
	if err != nil {
		return nil, err
	}
	return &source{url: u.String(), client: c}, nil
}

// read selects every series of p with samples in [from, to], one remote-read
// query per branch of p, merged in label-set order: a series several branches
// select comes once, its samples de-duplicated.
func (s *source) read(ctx context.Context, p *rewrite.Policy, from, to int64) (storage.SeriesSet, error) {
	branches := p.Branches()
	sets := make([]storage.SeriesSet, 0, len(branches))
	for _, b := range branches {
		q, err := remote.ToQuery(from, to, b, nil)
		if err != nil {
			return nil, err
		}
		ss, err := s.client.Read(ctx, q, true)
		if err != nil {
			return nil, fmt.Errorf("remote read from %s: %w", s.url, err)
		}
		sets = append(sets, ss)
	}
	return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge), nil
}
