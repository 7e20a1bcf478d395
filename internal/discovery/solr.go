package discovery

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/zk"
)

// solrFormat reads Solr's live nodes: [/chroot]/live_nodes/<host>:<port>_<context>,
// empty data. The scheme of every node is the urlScheme of the cluster's
// [/chroot]/clusterprops.json.
type solrFormat struct{}

func (solrFormat) Name() string { return "solr" }
func (solrFormat) Tree() TreeNeeds {
	return TreeNeeds{MaxDepth: 1, Data: false, DefaultPaths: []string{"/live_nodes"}}
}

const solrPrefix = metaPrefix + "solr_"

// parseSolrNodeName splits host:port_context; the host may be an IPv6
// literal, the context is URL-encoded.
func parseSolrNodeName(name string) (host string, port int, context string, ok bool) {
	// The port is the digits after the last ':' that are followed by '_'.
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] != ':' {
			continue
		}
		rest := name[i+1:]
		ps, ctx, found := strings.Cut(rest, "_")
		if !found {
			return "", 0, "", false
		}
		p, err := strconv.Atoi(ps)
		if err != nil || !validPort(p) {
			return "", 0, "", false
		}
		h := strings.TrimSuffix(strings.TrimPrefix(name[:i], "["), "]")
		c, err := url.QueryUnescape(ctx)
		if err != nil || !validHost(h) {
			return "", 0, "", false
		}
		return h, p, c, true
	}
	return "", 0, "", false
}

func (f solrFormat) Parse(n Node) ([]Member, error) {
	host, port, ctx, ok := parseSolrNodeName(n.Name)
	if !ok {
		return nil, invalid(ReasonMalformed, "Solr live node name %q is not host:port_context", n.Name)
	}
	l := commonLabels(f.Name(), n.Path)
	l[solrPrefix+"node_name"] = model.LabelValue(n.Name)
	l[solrPrefix+"host"] = model.LabelValue(host)
	l[solrPrefix+"port"] = itoa(port)
	l[solrPrefix+"context"] = model.LabelValue(ctx)
	path := "/admin/metrics"
	if c := strings.Trim(ctx, "/"); c != "" {
		path = "/" + c + path
	}
	return []Member{{
		Host:     host,
		Port:     port,
		Labels:   l,
		Defaults: MetricsConfig{Path: path, Params: map[string]string{"wt": "prometheus"}},
	}}, nil
}

// PropsPath is the cluster properties beside a live_nodes path:
// /solr/live_nodes -> /solr/clusterprops.json.
func (solrFormat) PropsPath(root string) string {
	return zk.Join(zk.Parent(root), "clusterprops.json")
}

// ParseProps reads urlScheme from clusterprops.json ("" when the znode is
// missing or empty, or the property is not set).
func (solrFormat) ParseProps(data []byte) (string, error) {
	if isEmpty(data) {
		return "", nil
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(data, &props); err != nil {
		return "", fmt.Errorf("clusterprops.json is not a JSON object: %w", err)
	}
	raw, ok := props["urlScheme"]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var scheme string
	if err := json.Unmarshal(raw, &scheme); err != nil {
		return "", fmt.Errorf("clusterprops.json: urlScheme %s is not a string", raw)
	}
	switch strings.ToLower(strings.TrimSpace(scheme)) {
	case "":
		return "", nil
	case "http":
		return "http", nil
	case "https":
		return "https", nil
	}
	return "", fmt.Errorf("clusterprops.json: urlScheme %q is neither http nor https", scheme)
}
