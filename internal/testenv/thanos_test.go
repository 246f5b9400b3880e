package testenv

import (
	"net/url"
	"strconv"
	"testing"
)

// TestThanos checks the topology is what it claims: the HA pair really holds
// every pair series twice (Query without deduplication counts both
// replicas), Query and Frontend deduplicate them, and the shard holds the
// namespaces the pair does not.
func TestThanos(t *testing.T) {
	th := StartThanos(t, ThanosOptions{})
	if th.Pair[0].Series == 0 || th.Pair[0].Series != th.Pair[1].Series || th.Shard.Series == 0 {
		t.Fatalf("pair %d and %d series, shard %d: want an equal non-empty pair and a non-empty shard",
			th.Pair[0].Series, th.Pair[1].Series, th.Shard.Series)
	}
	count := func(base, query string, extra url.Values) int {
		t.Helper()
		q := url.Values{"query": {query}, "time": {strconv.FormatInt(th.End.Unix(), 10)}}
		for k, v := range extra {
			q[k] = v
		}
		n, err := countAt(t.Context(), base+"/api/v1/query?"+q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	all := `count({__name__=~".+"})`
	if got, want := count(th.Query.URL, all, url.Values{"dedup": {"false"}}), 2*th.Pair[0].Series+th.Shard.Series; got != want {
		t.Errorf("Query without dedup: %d series, want %d (the pair's twice)", got, want)
	}
	for _, c := range []*ThanosComponent{th.Query, th.Frontend} {
		if got := count(c.URL, all, nil); got != th.Series {
			t.Errorf("%s: %d series, want %d", c.URL, got, th.Series)
		}
	}
	teamC := `count({namespace="team-c"})`
	if got, want := count(th.Frontend.URL, teamC, nil), count(th.Shard.URL, teamC, nil); got != want {
		t.Errorf("team-c through the frontend: %d series, want the shard's %d", got, want)
	}
}
