package remotewrite

// Reading from a source with global.external_labels. What the tenant may see
// is defined by the query API, which has no external labels and matches on
// stored labels only. Prometheus's remote-read handler (storage/remote/
// read_handler.go and codec.go, the same in 2.42 and 3.x):
//
//   - rewrites each MatchEqual matcher whose name is an external label and
//     whose value is that label's value into name="" (filterExtLabelsFromMatchers);
//     no other matcher type is touched;
//   - selects the series sorted by their stored labels and merges the
//     external labels into each as it streams it (MergeLabels, the stored
//     label winning on a clash), so the answer is in stored-label order, not
//     in the order of the labels it carries.
//
// So a read sends those matchers as the equivalent anchored regex, which the
// handler passes on untouched (readMatchers); and every returned series is
// mapped back to its stored labels (stripper), which keeps each branch's
// answer sorted: merged across branches by stored labels, it is the series
// set collect expects.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// readMatchers returns branch with each matcher the handler could rewrite
// (MatchEqual with a value, on any label but __name__, which cannot be an
// external label) as MatchRegexp on the quoted value: the same set of stored
// values, which the handler leaves alone. Every such matcher is converted,
// not only those of the external labels last read from the source's
// configuration: a source that gained one since cannot then widen a read.
// branch itself is not modified.
func readMatchers(branch []*labels.Matcher) ([]*labels.Matcher, error) {
	var out []*labels.Matcher
	for i, m := range branch {
		if m.Type != labels.MatchEqual || m.Value == "" || m.Name == labels.MetricName {
			continue
		}
		if out == nil {
			out = append([]*labels.Matcher(nil), branch...)
		}
		re, err := labels.NewMatcher(labels.MatchRegexp, m.Name, regexp.QuoteMeta(m.Value))
		if err != nil {
			return nil, err
		}
		out[i] = re
	}
	if out == nil {
		return branch, nil
	}
	return out, nil
}

// seriesAnswerLimit bounds a /api/v1/series answer.
const seriesAnswerLimit = 64 << 20

// stripper maps the series one branch's read returns back to their stored
// labels. A returned series s carries every external label: the stored one
// or, where none was stored, the external one added. Let A be the external
// labels s carries with their external values. Its stored labels are s
// minus A, unless the source stores some of A itself: known holds, by the
// labels they are returned with, the stored label sets of the branch that
// have a label equal to an external one (from the query API, which has no
// external labels).
type stripper struct {
	ext   labels.Labels
	known map[string][]labels.Labels
	buf   []byte
}

// storedWithExternal asks the query API for the branch's stored label sets
// with a label equal to an external one, among the series with samples in
// [from, to]: one /api/v1/series request per external label the branch does
// not rule out. Usually there are none, and each request costs little.
func (s *source) storedWithExternal(ctx context.Context, ext labels.Labels, branch []*labels.Matcher, from, to int64) (*stripper, error) {
	st := &stripper{ext: ext, known: map[string][]labels.Labels{}}
	seen := map[string]bool{}
	var err error
	ext.Range(func(l labels.Label) {
		if err != nil {
			return
		}
		for _, m := range branch {
			if m.Name == l.Name && !m.Matches(l.Value) {
				return // no series of the branch stores this label with that value
			}
		}
		sel := append(append(rewrite.Selector(nil), branch...), labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
		var stored []labels.Labels
		if stored, err = s.series(ctx, sel.String(), from, to); err != nil {
			return
		}
		for _, b := range stored {
			k := string(b.Bytes(nil))
			if seen[k] {
				continue // it has several labels equal to external ones
			}
			seen[k] = true
			r := st.returnedAs(b)
			st.known[r] = append(st.known[r], b)
		}
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// returnedAs is the key of the labels remote read returns a stored set
// with: the external labels merged in, the stored ones winning.
func (st *stripper) returnedAs(stored labels.Labels) string {
	b := labels.NewBuilder(stored)
	st.ext.Range(func(l labels.Label) {
		if !stored.Has(l.Name) {
			b.Set(l.Name, l.Value)
		}
	})
	return string(b.Labels().Bytes(nil))
}

// stored returns the stored labels of a returned series, and whether they
// are among known (then no other series of the branch may read as it).
func (st *stripper) stored(returned labels.Labels) (labels.Labels, bool, error) {
	st.buf = returned.Bytes(st.buf[:0])
	switch c := st.known[string(st.buf)]; len(c) {
	case 0:
	case 1:
		return c[0], true, nil
	default:
		// The messages name stored labels only: they reach the tenant's
		// status, and the external labels' values are not the tenant's.
		return labels.EmptyLabels(), false, fmt.Errorf("%w: a series could be any of the stored series %v; copying it would guess", errExternalLabels, c)
	}
	b := labels.NewBuilder(returned)
	var err error
	st.ext.Range(func(l labels.Label) {
		switch returned.Get(l.Name) {
		case l.Value:
			b.Del(l.Name) // not stored, else it would be known
		case "":
			err = fmt.Errorf("%w: a series of %s lacks the external label %s, which the source adds to every series: its external labels changed since they were read (they are read again within %s)", errExternalLabels, returned.Get(labels.MetricName), l.Name, externalCheckEvery)
		}
		// Another value is stored, and kept.
	})
	if err != nil {
		return labels.EmptyLabels(), false, err
	}
	return b.Labels(), false, nil
}

// series returns the label sets the query API's /api/v1/series answers for
// one selector over [from, to] (milliseconds).
func (s *source) series(ctx context.Context, selector string, from, to int64) ([]labels.Labels, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	form := url.Values{
		"match[]": {selector},
		"start":   {time.UnixMilli(from).UTC().Format(time.RFC3339Nano)},
		"end":     {time.UnixMilli(to).UTC().Format(time.RFC3339Nano)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/api/v1/series", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the source's stored labels (for its external labels): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, seriesAnswerLimit+1))
	if err != nil {
		return nil, fmt.Errorf("%s/api/v1/series: %w", s.base, err)
	}
	if len(body) > seriesAnswerLimit {
		return nil, fmt.Errorf("%s/api/v1/series?match[]=%s: the answer exceeds %d MiB", s.base, selector, seriesAnswerLimit>>20)
	}
	var answer struct {
		Status string              `json:"status"`
		Error  string              `json:"error"`
		Data   []map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || resp.StatusCode != http.StatusOK || answer.Status != "success" {
		if answer.Error == "" && err != nil {
			answer.Error = err.Error()
		}
		return nil, fmt.Errorf("%s/api/v1/series?match[]=%s: %s: %s", s.base, selector, resp.Status, answer.Error)
	}
	out := make([]labels.Labels, len(answer.Data))
	for i, m := range answer.Data {
		out[i] = labels.FromMap(m)
	}
	return out, nil
}

// stripSet is one branch's read with each series' stored labels.
type stripSet struct {
	storage.SeriesSet
	st   *stripper
	cur  storage.Series
	prev labels.Labels
	// Returned label sets mapped to a known stored set: one more series
	// returned as one of them is another stored series (one with none of
	// the labels equal to external ones), and which is which is unknown.
	viaKnown map[string]bool
	err      error
}

func (s *stripSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	raw := s.SeriesSet.At()
	returned := raw.Labels()
	lset, known, err := s.st.stored(returned)
	if err != nil {
		s.err = err
		return false
	}
	if known { // every series returned as it is
		k := string(returned.Bytes(nil))
		if s.viaKnown[k] {
			s.err = fmt.Errorf("%w: the source holds several series returned as the stored series %s; which samples are whose is unknown (lowering max_window helps if it is one series in several frames)", errExternalLabels, lset)
			return false
		}
		if s.viaKnown == nil {
			s.viaKnown = map[string]bool{}
		}
		s.viaKnown[k] = true
	}
	// The handler streams in stored-label order; the merge across branches
	// relies on it.
	if !s.prev.IsEmpty() && labels.Compare(s.prev, lset) >= 0 {
		s.err = fmt.Errorf("the source returned series out of order: stored labels %s after %s", lset, s.prev)
		return false
	}
	s.prev = lset
	s.cur = strippedSeries{raw, lset}
	return true
}

func (s *stripSet) At() storage.Series { return s.cur }

func (s *stripSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

type strippedSeries struct {
	s    storage.Series
	lset labels.Labels
}

func (s strippedSeries) Labels() labels.Labels { return s.lset }
func (s strippedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	return s.s.Iterator(it)
}

// strippedRead is the merged read of a source with external labels.
type strippedRead struct{ storage.SeriesSet }

// drain reads the rest, for its errors: a series is known to be whose only
// once the whole branch is read (see stripSet.viaKnown), so a window cut
// short must not be sent before the rest is read.
func (r strippedRead) drain() error {
	for r.Next() {
	}
	return r.Err()
}
