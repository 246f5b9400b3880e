package remotewrite

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/proto"
)

// pushgatewayTarget replaces one Pushgateway group with the current value of
// every live series on each push (PUT). The Pushgateway refuses samples with
// timestamps, so none are sent; it keeps a group until it is deleted.
type pushgatewayTarget struct {
	url    string // the group's URL
	client *http.Client
}

// groupURL is base's URL of the group job + groupingKey. Every value is
// base64url-encoded, as the Pushgateway allows, so no value can add a path
// segment.
func groupURL(base, job string, groupingKey map[string]string) string {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(base, "/"))
	b.WriteString("/metrics")
	seg := func(name, value string) {
		enc := base64.URLEncoding.EncodeToString([]byte(value))
		if enc == "" {
			enc = "=" // the Pushgateway's spelling of the empty value
		}
		fmt.Fprintf(&b, "/%s@base64/%s", name, enc)
	}
	seg("job", job)
	for _, k := range slices.Sorted(maps.Keys(groupingKey)) {
		seg(k, groupingKey[k])
	}
	return b.String()
}

func (t *pushgatewayTarget) push(ctx context.Context, series []labels.Labels, values []float64) error {
	body, err := encodeFamilies(series, values)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, t.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	resp, err := t.client.Do(req)
	if err != nil {
		return classify(0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return classify(resp.StatusCode, fmt.Errorf("pushgateway %s: %s: %s", t.url, resp.Status, bytes.TrimSpace(msg)))
}

// encodeFamilies encodes series (with their metric names) as untyped metric
// families: the copy has raw samples, not the exposition's types.
func encodeFamilies(series []labels.Labels, values []float64) ([]byte, error) {
	families := map[string]*dto.MetricFamily{}
	for i, lset := range series {
		name := lset.Get(labels.MetricName)
		mf := families[name]
		if mf == nil {
			mf = &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_UNTYPED.Enum()}
			families[name] = mf
		}
		m := &dto.Metric{Untyped: &dto.Untyped{Value: proto.Float64(values[i])}}
		lset.Range(func(l labels.Label) {
			if l.Name != labels.MetricName {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
			}
		})
		mf.Metric = append(mf.Metric, m)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, name := range slices.Sorted(maps.Keys(families)) {
		if err := enc.Encode(families[name]); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
