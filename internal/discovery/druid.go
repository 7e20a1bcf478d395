package discovery

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"

	"github.com/prometheus/common/model"
)

// druidFormat reads Druid's internal discovery:
// /druid/internal-discovery/<role>/<host:port>, JSON that is gzip
// compressed by default.
type druidFormat struct{}

func (druidFormat) Name() string { return "druid" }
func (druidFormat) Tree() TreeNeeds {
	return TreeNeeds{MaxDepth: 2, Data: true, DefaultPaths: []string{"/druid/internal-discovery"}}
}

const (
	druidPrefix = metaPrefix + "druid_"
	maxInflated = 1 << 20 // a znode holds at most about 1 MiB
)

type druidAnnouncement struct {
	DruidNode struct {
		Service             string `json:"service"`
		Host                string `json:"host"`
		PlaintextPort       *int   `json:"plaintextPort"`
		TLSPort             *int   `json:"tlsPort"`
		EnablePlaintextPort *bool  `json:"enablePlaintextPort"`
		EnableTLSPort       *bool  `json:"enableTlsPort"`
	} `json:"druidNode"`
	NodeType string `json:"nodeType"`
}

func inflate(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxInflated {
		return nil, fmt.Errorf("inflates to more than %d bytes", maxInflated)
	}
	return out, nil
}

func (f druidFormat) Parse(n Node) ([]Member, error) {
	if isEmpty(n.Data) {
		return nil, nil
	}
	data, err := inflate(n.Data)
	if err != nil {
		return nil, invalid(ReasonMalformed, "gunzip Druid announcement: %w", err)
	}
	var a druidAnnouncement
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, invalid(ReasonMalformed, "decode Druid announcement: %w", err)
	}
	d := a.DruidNode
	plain, tls := 0, 0
	if d.PlaintextPort != nil && (d.EnablePlaintextPort == nil || *d.EnablePlaintextPort) {
		plain = *d.PlaintextPort
	}
	if d.TLSPort != nil && (d.EnableTLSPort == nil || *d.EnableTLSPort) {
		tls = *d.TLSPort
	}
	m := Member{Host: d.Host, Port: plain, Endpoints: map[string]Endpoint{}}
	if validPort(plain) {
		m.Endpoints["plaintext"] = Endpoint{Host: d.Host, Port: plain}
	}
	if validPort(tls) {
		m.Endpoints["tls"] = Endpoint{Host: d.Host, Port: tls}
		if !validPort(plain) {
			m.Port, m.Defaults.Scheme = tls, "https"
		}
	}
	if !validHost(m.Host) || !validPort(m.Port) {
		return nil, invalid(ReasonNoAddress, "Druid node has no usable host and port (host %q)", d.Host)
	}
	l := commonLabels(f.Name(), n.Path)
	l[druidPrefix+"role"] = model.LabelValue(n.Parent)
	l[druidPrefix+"node_type"] = model.LabelValue(a.NodeType)
	l[druidPrefix+"service"] = model.LabelValue(d.Service)
	l[druidPrefix+"host"] = model.LabelValue(d.Host)
	if validPort(plain) {
		l[druidPrefix+"plaintext_port"] = itoa(plain)
	}
	if validPort(tls) {
		l[druidPrefix+"tls_port"] = itoa(tls)
	}
	m.Labels = l
	return []Member{m}, nil
}
