package discovery

import (
	"encoding/json"

	"github.com/prometheus/common/model"
)

// nerveFormat reads Airbnb Nerve (SmartStack) registrations:
// <path>/<instance>_<seq> holding {"host","port","name"}. Its labels are
// exactly those of Prometheus's nerve_sd_configs.
type nerveFormat struct{}

func (nerveFormat) Name() string    { return "nerve" }
func (nerveFormat) Tree() TreeNeeds { return TreeNeeds{MaxDepth: 0, Data: true} }

const (
	nervePrefix         = model.MetaLabelPrefix + "nerve_"
	nervePathLabel      = nervePrefix + "path"
	nerveEndpointPrefix = nervePrefix + "endpoint"
)

type nerveMember struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	Name string `json:"name"`
}

func (nerveFormat) Parse(n Node) ([]Member, error) {
	if isEmpty(n.Data) {
		return nil, nil
	}
	var nm nerveMember
	if err := json.Unmarshal(n.Data, &nm); err != nil {
		return nil, invalid(ReasonMalformed, "decode nerve member: %w", err)
	}
	if !validHost(nm.Host) || !validPort(nm.Port) {
		return nil, invalid(ReasonNoAddress, "nerve member has no usable host and port (host %q, port %d)", nm.Host, nm.Port)
	}
	return []Member{{
		Host: nm.Host,
		Port: nm.Port,
		Labels: model.LabelSet{
			nervePathLabel:                model.LabelValue(n.Path),
			nerveEndpointPrefix + "_host": model.LabelValue(nm.Host),
			nerveEndpointPrefix + "_port": itoa(nm.Port),
			nerveEndpointPrefix + "_name": model.LabelValue(nm.Name),
		},
	}}, nil
}
