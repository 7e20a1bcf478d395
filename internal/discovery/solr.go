package discovery

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// solrFormat reads Solr's live nodes: [/chroot]/live_nodes/<host>:<port>_<context>,
// empty data.
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
