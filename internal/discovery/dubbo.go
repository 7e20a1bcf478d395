package discovery

import (
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// dubboFormat reads Dubbo 2 interface-level registrations:
// /dubbo/<interface>/providers/<URL-encoded dubbo:// URL>. Everything is in
// the znode name. A process appears once per exported interface, so
// members de-duplicate on host + application.
type dubboFormat struct{}

func (dubboFormat) Name() string { return "dubbo" }
func (dubboFormat) Tree() TreeNeeds {
	return TreeNeeds{MaxDepth: 3, Data: false, DefaultPaths: []string{"/dubbo"}}
}

const dubboPrefix = metaPrefix + "dubbo_"

func (f dubboFormat) Parse(n Node) ([]Member, error) {
	if n.Parent != "providers" {
		return nil, nil // interfaces, consumers, routers, configurators
	}
	raw, err := url.QueryUnescape(n.Name)
	if err != nil {
		return nil, invalid(ReasonMalformed, "URL-decode Dubbo provider name: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalid(ReasonMalformed, "parse Dubbo provider URL %q: %w", raw, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, invalid(ReasonMalformed, "Dubbo provider name %q is not a URL", raw)
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, invalid(ReasonNoAddress, "Dubbo provider URL %q has no host:port", raw)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || !validPort(port) || !validHost(host) {
		return nil, invalid(ReasonNoAddress, "Dubbo provider URL %q has no usable host:port", raw)
	}
	q := u.Query()
	app := q.Get("application")
	iface := q.Get("interface")
	if iface == "" {
		iface = strings.TrimPrefix(u.Path, "/")
	}
	l := commonLabels(f.Name(), n.Path)
	l[dubboPrefix+"host"] = model.LabelValue(host)
	l[dubboPrefix+"port"] = itoa(port)
	l[dubboPrefix+"protocol"] = model.LabelValue(u.Scheme)
	l[dubboPrefix+"application"] = model.LabelValue(app)
	l[dubboPrefix+"interfaces"] = model.LabelValue("," + iface + ",")
	for _, k := range []string{"side", "dubbo", "release", "pid"} {
		if v := q.Get(k); v != "" {
			l[model.LabelName(dubboPrefix+k)] = model.LabelValue(v)
		}
	}
	return []Member{{
		Host:      host,
		Port:      port,
		Labels:    l,
		Endpoints: map[string]Endpoint{u.Scheme: {Host: host, Port: port}},
		Fields:    map[string]string{"qos.port": q.Get("qos.port")},
		Defaults:  MetricsConfig{Port: 22222, Path: "/metrics"},
		Group:     "dubbo:" + app,
		Key:       host + "/" + app,
	}}, nil
}

// Merge folds the znodes of one process (one per interface) into one
// member: the first by path, with every interface listed.
func (dubboFormat) Merge(ms []Member) Member {
	m := ms[0]
	var ifaces []string
	seen := map[string]bool{}
	for _, x := range ms {
		for _, i := range strings.Split(strings.Trim(string(x.Labels[dubboPrefix+"interfaces"]), ","), ",") {
			if i != "" && !seen[i] {
				seen[i] = true
				ifaces = append(ifaces, i)
			}
		}
	}
	sort.Strings(ifaces)
	l := m.Labels.Clone()
	l[dubboPrefix+"interfaces"] = model.LabelValue("," + strings.Join(ifaces, ",") + ",")
	m.Labels = l
	return m
}
