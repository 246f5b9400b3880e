package remotewrite

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/yaml"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
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
	base   string
	client *readClient
	http   *http.Client

	mu      sync.Mutex // guards checked and ext
	checked time.Time
	ext     labels.Labels
}

// externalCheckEvery is how often the source's configuration is read again.
const externalCheckEvery = 5 * time.Minute

// errExternalLabels says a series read from a source with external labels
// cannot be mapped back to its stored labels exactly (see extlabels.go):
// the window is not copied rather than copied with a guess.
var errExternalLabels = errors.New("the source's external labels make a series ambiguous")

// check returns the source's external labels, reading its configuration
// (GET /api/v1/status/config) at most every externalCheckEvery. A source
// that does not answer it is refused: what its remote read adds to the
// series and how it rewrites matchers cannot be known.
func (s *source) check(ctx context.Context) (labels.Labels, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checked.IsZero() && time.Since(s.checked) < externalCheckEvery {
		return s.ext, nil
	}
	ext, err := s.externalLabels(ctx)
	if err != nil {
		return labels.EmptyLabels(), fmt.Errorf("reading the source's configuration (for its external labels): %w", err)
	}
	// An empty value is no label.
	b := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range ext {
		b.Set(k, v)
	}
	s.ext, s.checked = b.Labels(), time.Now()
	return s.ext, nil
}

func (s *source) externalLabels(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/v1/status/config", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/api/v1/status/config: %s", s.base, resp.Status)
	}
	var answer struct {
		Data struct {
			YAML string `json:"yaml"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("%s/api/v1/status/config: %w", s.base, err)
	}
	var cfg struct {
		Global struct {
			ExternalLabels map[string]string `json:"external_labels"`
		} `json:"global"`
	}
	if err := yaml.Unmarshal([]byte(answer.Data.YAML), &cfg); err != nil {
		return nil, fmt.Errorf("the source's configuration: %w", err)
	}
	return cfg.Global.ExternalLabels, nil
}

func newSource(base string, timeout time.Duration, userAgent string) (*source, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/api/v1/read")
	if err != nil {
		return nil, fmt.Errorf("source URL %q: %w", base, err)
	}
	rc, err := config_util.NewClientFromConfig(config_util.DefaultHTTPClientConfig, "prom_remote_write_source",
		config_util.WithUserAgent(userAgent), config_util.WithDialContextFunc(dialBuffered))
	if err != nil {
		return nil, err
	}
	hc, err := config_util.NewClientFromConfig(config_util.DefaultHTTPClientConfig, "prom_remote_write_source", config_util.WithUserAgent(userAgent))
	if err != nil {
		return nil, err
	}
	hc.Timeout = timeout
	c := &readClient{url: u.String(), client: rc, timeout: timeout}
	return &source{url: u.String(), base: strings.TrimSuffix(base, "/"), client: c, http: hc}, nil
}

// readBufferSize is how much one read from a source connection takes.
// net/http reads 4 KiB at a time.
const readBufferSize = 1 << 20

// A streamed remote-read answer comes as one flushed frame per series, a
// few hundred bytes each, so a reader that keeps up makes a system call per
// series. Once an answer has passed coalesceAfter, a read that follows one
// that did not fill the buffer waits coalesceFor first and takes what
// arrived meanwhile in one call: a quarter of a
// copier's CPU otherwise goes to these calls, and to waking up for them (on
// an idle machine, waking up cost the copier more than decoding: 16 ms
// instead of 4 ms took a third off its CPU per sample in make bench). A
// copier that is behind waits while it delivers the window before
// (readahead.go), so the wait costs no time there. A source sending faster
// than readBufferSize per coalesceFor (64 MB/s) is read without waiting.
const coalesceFor = 16 * time.Millisecond

// dialBuffered dials a source connection that reads in large pieces.
func dialBuffered(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second} // prometheus/common's defaults
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	b := &bufferedConn{Conn: conn}
	b.r = bufio.NewReaderSize(readCounter{b}, readBufferSize)
	return b, nil
}

// coalesceAfter is how much of an answer is read before reads wait: a
// small answer (a copier that keeps up, or a test's) is read at once.
const coalesceAfter = 256 << 10

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
	// Written by the transport's reading goroutine, and cleared by its
	// writing one when a request goes out: small, the last read from the
	// connection did not fill the buffer; got, bytes read since the
	// request.
	small atomic.Bool
	got   atomic.Int64
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() == 0 && c.small.Load() && c.got.Load() >= coalesceAfter {
		time.Sleep(coalesceFor)
	}
	return c.r.Read(p)
}

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.small.Store(false)
	c.got.Store(0)
	return c.Conn.Write(p)
}

// readCounter is the connection under the buffer, noting how much each
// read got.
type readCounter struct{ c *bufferedConn }

func (r readCounter) Read(p []byte) (int, error) {
	n, err := r.c.Conn.Read(p)
	r.c.small.Store(n < len(p))
	r.c.got.Add(int64(n))
	return n, err
}

// read selects every series of p with samples in [from, to], one remote-read
// query per branch of p, merged in label-set order: a series several branches
// select comes once, its samples de-duplicated. From a source with external
// labels, the series have their stored labels, as the query API shows them.
func (s *source) read(ctx context.Context, p *rewrite.Policy, from, to int64) (storage.SeriesSet, error) {
	ext, err := s.check(ctx)
	if err != nil {
		return nil, err
	}
	branches := p.Branches()
	// The stored labels first: a read streams as soon as it is sent.
	strippers := make([]*stripper, len(branches))
	if !ext.IsEmpty() {
		for i, b := range branches {
			if strippers[i], err = s.storedWithExternal(ctx, ext, b, from, to); err != nil {
				return nil, err
			}
		}
	}
	sets := make([]storage.SeriesSet, 0, len(branches))
	for i, b := range branches {
		ms, err := readMatchers(b)
		if err != nil {
			return nil, err
		}
		q, err := remote.ToQuery(from, to, ms, nil)
		if err != nil {
			return nil, err
		}
		ss, err := s.client.Read(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("remote read from %s: %w", s.url, err)
		}
		if st := strippers[i]; st != nil {
			// Series returned as a stored set the query API lists may
			// have a twin stored without the label: not parts.
			ss = &joinedParts{SeriesSet: ss, join: func(l labels.Labels) bool {
				_, known, err := st.stored(l)
				return err == nil && !known
			}}
		} else {
			ss = &joinedParts{SeriesSet: ss}
		}
		if strippers[i] != nil {
			ss = &stripSet{SeriesSet: ss, st: strippers[i]}
		}
		sets = append(sets, ss)
	}
	merged := storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	if !ext.IsEmpty() {
		return strippedRead{merged}, nil
	}
	return merged, nil
}
