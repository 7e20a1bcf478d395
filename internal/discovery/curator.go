package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// curatorFormat reads Apache Curator x-discovery service instances
// (<basePath>/<service>/<id>), which is also what Spring Cloud Zookeeper
// and Dubbo 3 application-level registration write: they are told apart
// by payload.@class.
type curatorFormat struct{}

func (curatorFormat) Name() string { return "curator" }
func (curatorFormat) Tree() TreeNeeds {
	return TreeNeeds{MaxDepth: 2, Data: true, DefaultPaths: []string{"/services"}}
}

const (
	curatorPrefix = metaPrefix + "curator_"

	springClass = "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance"
	dubboClass  = "org.apache.dubbo.registry.zookeeper.ZookeeperInstance"
)

type curatorInstance struct {
	Name                string          `json:"name"`
	ID                  string          `json:"id"`
	Address             string          `json:"address"`
	Port                *int            `json:"port"`
	SSLPort             *int            `json:"sslPort"`
	Payload             json.RawMessage `json:"payload"`
	RegistrationTimeUTC *int64          `json:"registrationTimeUTC"`
	ServiceType         string          `json:"serviceType"`
	Enabled             *bool           `json:"enabled"`
	URISpec             *curatorURISpec `json:"uriSpec"`
}

// curatorURISpec is Curator's UriSpec: literal parts and {variables}.
type curatorURISpec struct {
	Parts []struct {
		Value    string `json:"value"`
		Variable bool   `json:"variable"`
	} `json:"parts"`
}

// render fills the variables in as Curator's UriSpec.build does for an
// instance: {scheme} is https when sslPort is set, unknown variables are
// empty, {[} and {]} are literal braces.
func (u *curatorURISpec) render(ci *curatorInstance) string {
	num := func(p *int) string {
		if p == nil {
			return ""
		}
		return strconv.Itoa(*p)
	}
	var b strings.Builder
	for _, p := range u.Parts {
		if !p.Variable {
			b.WriteString(p.Value)
			continue
		}
		switch p.Value {
		case "scheme":
			if ci.SSLPort != nil {
				b.WriteString("https")
			} else {
				b.WriteString("http")
			}
		case "name":
			b.WriteString(ci.Name)
		case "id":
			b.WriteString(ci.ID)
		case "address":
			b.WriteString(ci.Address)
		case "port":
			b.WriteString(num(ci.Port))
		case "ssl-port":
			b.WriteString(num(ci.SSLPort))
		case "registration-time-utc":
			if ci.RegistrationTimeUTC != nil {
				b.WriteString(strconv.FormatInt(*ci.RegistrationTimeUTC, 10))
			}
		case "service-type":
			b.WriteString(strings.ToLower(ci.ServiceType))
		case "[":
			b.WriteString("{")
		case "]":
			b.WriteString("}")
		}
	}
	return b.String()
}

// literalHTTPS says whether the spec starts with a literal "https" (as in
// "https://{address}:{ssl-port}"), not with the {scheme} variable.
func (u *curatorURISpec) literalHTTPS() bool {
	return len(u.Parts) > 0 && !u.Parts[0].Variable && len(u.Parts[0].Value) >= 5 &&
		strings.EqualFold(u.Parts[0].Value[:5], "https")
}

// curatorKind names the system behind a payload class.
func curatorKind(class string) string {
	switch {
	case class == springClass || strings.Contains(class, ".springframework."):
		return "spring"
	case class == dubboClass || strings.Contains(class, ".dubbo."):
		return "dubbo"
	}
	return "curator"
}

func (f curatorFormat) Parse(n Node) ([]Member, error) {
	if isEmpty(n.Data) {
		return nil, nil
	}
	var ci curatorInstance
	if err := json.Unmarshal(n.Data, &ci); err != nil {
		var spec *json.UnmarshalTypeError
		if !errors.As(err, &spec) || !strings.HasPrefix(spec.Field, "uriSpec") {
			return nil, invalid(ReasonMalformed, "decode Curator service instance: %w", err)
		}
		// A uriSpec of another shape is left out, not the instance.
		ci = curatorInstance{}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(n.Data, &raw); err != nil {
			return nil, invalid(ReasonMalformed, "decode Curator service instance: %w", err)
		}
		delete(raw, "uriSpec")
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &ci); err != nil {
			return nil, invalid(ReasonMalformed, "decode Curator service instance: %w", err)
		}
	}
	port, ssl := 0, 0
	if ci.Port != nil {
		port = *ci.Port
	}
	if ci.SSLPort != nil {
		ssl = *ci.SSLPort
	}
	host := ci.Address
	main := port
	scheme := ""
	switch {
	case !validPort(main) && validPort(ssl):
		main, scheme = ssl, "https"
	case ci.URISpec != nil && ci.URISpec.literalHTTPS():
		// The instance says its URI is https: the ssl port when it has
		// one, else its port.
		scheme = "https"
		if validPort(ssl) {
			main = ssl
		}
	}
	if !validHost(host) || !validPort(main) {
		return nil, invalid(ReasonNoAddress, "Curator service instance has no usable address and port (address %q, port %d, sslPort %d)", host, port, ssl)
	}
	l := commonLabels(f.Name(), n.Path)
	l[curatorPrefix+"name"] = model.LabelValue(ci.Name)
	l[curatorPrefix+"id"] = model.LabelValue(ci.ID)
	l[curatorPrefix+"address"] = model.LabelValue(ci.Address)
	if validPort(port) {
		l[curatorPrefix+"port"] = itoa(port)
	}
	if validPort(ssl) {
		l[curatorPrefix+"ssl_port"] = itoa(ssl)
	}
	l[curatorPrefix+"service_type"] = model.LabelValue(ci.ServiceType)
	if ci.RegistrationTimeUTC != nil {
		l[curatorPrefix+"registration_time_utc"] = model.LabelValue(strconv.FormatInt(*ci.RegistrationTimeUTC, 10))
	}
	enabled := ci.Enabled == nil || *ci.Enabled // a missing enabled means true
	l[curatorPrefix+"enabled"] = model.LabelValue(strconv.FormatBool(enabled))
	if ci.URISpec != nil && len(ci.URISpec.Parts) > 0 {
		l[curatorPrefix+"uri_spec"] = model.LabelValue(ci.URISpec.render(&ci))
	}

	m := Member{Host: host, Port: main, Disabled: !enabled, Labels: l, Fields: map[string]string{}}
	if scheme != "" {
		m.Defaults.Scheme = scheme
	}
	kind := "curator"
	var payload map[string]json.RawMessage
	if len(ci.Payload) > 0 && !bytes.Equal(bytes.TrimSpace(ci.Payload), []byte("null")) {
		// A payload that is not an object is kept out of the labels.
		if json.Unmarshal(ci.Payload, &payload) == nil {
			var class string
			if raw, ok := payload["@class"]; ok {
				_ = json.Unmarshal(raw, &class)
			}
			l[curatorPrefix+"payload_class"] = model.LabelValue(class)
			kind = curatorKind(class)
			// A generic payload (ServiceDiscoveryBuilder.builder(Map.class)):
			// its scalar fields; Spring's and Dubbo's: their metadata.
			for _, k := range sortedKeys(payload) {
				if s, ok := scalar(payload[k]); ok && k != "@class" && k != "metadata" {
					m.Fields[k] = s
					if kind == "curator" {
						setOnce(l, curatorPrefix+"payload_"+sanitize(k), s)
					}
				}
			}
			var md map[string]json.RawMessage
			if raw, ok := payload["metadata"]; ok && json.Unmarshal(raw, &md) == nil {
				for _, k := range sortedKeys(md) {
					if s, ok := scalar(md[k]); ok {
						m.Fields[k] = s
						setOnce(l, curatorPrefix+"metadata_"+sanitize(k), s)
					}
				}
			}
		}
	}
	l[curatorPrefix+"kind"] = model.LabelValue(kind)
	switch kind {
	case "spring":
		m.Status = m.Fields["instance_status"]
		m.Defaults.Path = "/actuator/prometheus"
	case "dubbo":
		m.Defaults.Port = 22222 // the QoS port serves /metrics
		m.Defaults.Path = "/metrics"
		if eps := m.Fields["dubbo.endpoints"]; eps != "" {
			var list []struct {
				Port     int    `json:"port"`
				Protocol string `json:"protocol"`
			}
			if json.Unmarshal([]byte(eps), &list) == nil {
				for _, e := range list {
					if validPort(e.Port) && e.Protocol != "" {
						if m.Endpoints == nil {
							m.Endpoints = map[string]Endpoint{}
						}
						m.Endpoints[e.Protocol] = Endpoint{Host: host, Port: e.Port}
					}
				}
			}
		}
	}
	return []Member{m}, nil
}

// sortedKeys are m's keys in order: keys that sanitize to one label name
// give the same winner on every parse (the first).
func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// setOnce sets a label unless an earlier key set it.
func setOnce(l model.LabelSet, name, value string) {
	if _, ok := l[model.LabelName(name)]; !ok {
		l[model.LabelName(name)] = model.LabelValue(value)
	}
}

// scalar renders a JSON string, number or boolean as a label value.
func scalar(raw json.RawMessage) (string, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strings.TrimSpace(string(raw)), true
	}
	return "", false
}
