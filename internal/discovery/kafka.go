package discovery

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// kafkaFormat reads Kafka broker registrations (ZooKeeper mode):
// [/chroot]/brokers/ids/<broker.id>. host and port are null / -1 when the
// broker has no PLAINTEXT listener: then the first of endpoints is used.
type kafkaFormat struct{}

func (kafkaFormat) Name() string { return "kafka" }
func (kafkaFormat) Tree() TreeNeeds {
	return TreeNeeds{MaxDepth: 1, Data: true, DefaultPaths: []string{"/brokers/ids"}}
}

const kafkaPrefix = metaPrefix + "kafka_"

type kafkaBroker struct {
	ProtocolMap map[string]string `json:"listener_security_protocol_map"`
	Endpoints   []string          `json:"endpoints"`
	JMXPort     *int              `json:"jmx_port"`
	Host        *string           `json:"host"`
	Port        *int              `json:"port"`
	Rack        *string           `json:"rack"`
	Version     *int              `json:"version"`
}

// parseKafkaEndpoint splits "NAME://host:port".
func parseKafkaEndpoint(s string) (name string, ep Endpoint, ok bool) {
	name, rest, found := strings.Cut(s, "://")
	if !found || name == "" {
		return "", Endpoint{}, false
	}
	h, p, err := net.SplitHostPort(rest)
	if err != nil {
		return "", Endpoint{}, false
	}
	port, err := strconv.Atoi(p)
	if err != nil || !validPort(port) || !validHost(h) {
		return "", Endpoint{}, false
	}
	return name, Endpoint{Host: h, Port: port}, true
}

func (f kafkaFormat) Parse(n Node) ([]Member, error) {
	if isEmpty(n.Data) {
		return nil, nil
	}
	var b kafkaBroker
	if err := json.Unmarshal(n.Data, &b); err != nil {
		return nil, invalid(ReasonMalformed, "decode Kafka broker registration: %w", err)
	}
	l := commonLabels(f.Name(), n.Path)
	l[kafkaPrefix+"broker_id"] = model.LabelValue(n.Name)
	m := Member{Labels: l, Endpoints: map[string]Endpoint{}}
	first := ""
	for _, s := range b.Endpoints {
		name, ep, ok := parseKafkaEndpoint(s)
		if !ok {
			continue
		}
		if _, dup := m.Endpoints[name]; dup {
			continue
		}
		m.Endpoints[name] = ep
		l[model.LabelName(kafkaPrefix+"endpoint_"+sanitize(strings.ToLower(name)))] = model.LabelValue(joinHostPort(ep.Host, ep.Port))
		if first == "" {
			first = name
		}
	}
	listener := ""
	switch {
	case b.Host != nil && b.Port != nil && validHost(*b.Host) && validPort(*b.Port):
		m.Host, m.Port = *b.Host, *b.Port
		listener = "PLAINTEXT"
		for name, ep := range m.Endpoints {
			if ep.Host == m.Host && ep.Port == m.Port {
				listener = name
				break
			}
		}
	case first != "":
		listener = first
		m.Host, m.Port = m.Endpoints[first].Host, m.Endpoints[first].Port
	default:
		return nil, invalid(ReasonNoAddress, "Kafka broker %s has neither host/port nor a usable endpoint", n.Name)
	}
	l[kafkaPrefix+"host"] = model.LabelValue(m.Host)
	l[kafkaPrefix+"port"] = itoa(m.Port)
	l[kafkaPrefix+"listener"] = model.LabelValue(listener)
	if p, ok := b.ProtocolMap[listener]; ok {
		l[kafkaPrefix+"security_protocol"] = model.LabelValue(p)
	} else if listener == "PLAINTEXT" {
		l[kafkaPrefix+"security_protocol"] = "PLAINTEXT"
	}
	if b.JMXPort != nil && validPort(*b.JMXPort) {
		l[kafkaPrefix+"jmx_port"] = itoa(*b.JMXPort)
		m.Fields = map[string]string{"jmx_port": strconv.Itoa(*b.JMXPort)}
	}
	if b.Rack != nil {
		l[kafkaPrefix+"rack"] = model.LabelValue(*b.Rack)
	}
	if b.Version != nil {
		l[kafkaPrefix+"version"] = itoa(*b.Version)
	}
	return []Member{m}, nil
}
