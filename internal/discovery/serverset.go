package discovery

import (
	"encoding/json"
	"sort"

	"github.com/prometheus/common/model"
)

// serversetFormat reads Finagle / Aurora serversets:
// <path>/member_<seq> holding {"serviceEndpoint":{"host","port"},
// "additionalEndpoints":{...},"status","shard"}. Its labels are exactly
// those of Prometheus's serverset_sd_configs.
type serversetFormat struct{}

func (serversetFormat) Name() string    { return "serverset" }
func (serversetFormat) Tree() TreeNeeds { return TreeNeeds{MaxDepth: 0, Data: true} }

const (
	serversetPrefix         = model.MetaLabelPrefix + "serverset_"
	serversetPathLabel      = serversetPrefix + "path"
	serversetStatusLabel    = serversetPrefix + "status"
	serversetShardLabel     = serversetPrefix + "shard"
	serversetEndpointPrefix = serversetPrefix + "endpoint"
)

// The same field shapes as Prometheus decodes (encoding/json matches
// field names case-insensitively, as there).
type serversetMember struct {
	ServiceEndpoint     serversetEndpoint
	AdditionalEndpoints map[string]serversetEndpoint
	Status              string `json:"status"`
	Shard               int    `json:"shard"`
}

type serversetEndpoint struct {
	Host string
	Port int
}

func (f serversetFormat) Parse(n Node) ([]Member, error) {
	if isEmpty(n.Data) {
		return nil, nil
	}
	var sm serversetMember
	if err := json.Unmarshal(n.Data, &sm); err != nil {
		return nil, invalid(ReasonMalformed, "decode serverset member: %w", err)
	}
	ep := sm.ServiceEndpoint
	if !validHost(ep.Host) || !validPort(ep.Port) {
		return nil, invalid(ReasonNoAddress, "serverset member has no usable serviceEndpoint (host %q, port %d)", ep.Host, ep.Port)
	}
	m := Member{
		Host:   ep.Host,
		Port:   ep.Port,
		Status: sm.Status,
		Labels: model.LabelSet{
			serversetPathLabel:                model.LabelValue(n.Path),
			serversetEndpointPrefix + "_host": model.LabelValue(ep.Host),
			serversetEndpointPrefix + "_port": itoa(ep.Port),
			serversetStatusLabel:              model.LabelValue(sm.Status),
			serversetShardLabel:               itoa(sm.Shard),
		},
	}
	names := make([]string, 0, len(sm.AdditionalEndpoints))
	for name := range sm.AdditionalEndpoints {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		e := sm.AdditionalEndpoints[name]
		clean := sanitize(name)
		m.Labels[model.LabelName(serversetEndpointPrefix+"_host_"+clean)] = model.LabelValue(e.Host)
		m.Labels[model.LabelName(serversetEndpointPrefix+"_port_"+clean)] = itoa(e.Port)
		if validHost(e.Host) && validPort(e.Port) {
			if m.Endpoints == nil {
				m.Endpoints = map[string]Endpoint{}
			}
			m.Endpoints[name] = Endpoint{Host: e.Host, Port: e.Port}
		}
	}
	return []Member{m}, nil
}
