package discovery

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// rules are a job's metrics and filter settings, applied to members.
type rules struct {
	metrics MetricsConfig
	filter  FilterConfig
	labels  model.LabelSet
}

func newRules(j JobConfig) rules {
	r := rules{metrics: j.Metrics, filter: j.Filter, labels: model.LabelSet{}}
	for k, v := range j.Labels {
		r.labels[model.LabelName(k)] = model.LabelValue(v)
	}
	return r
}

// keep applies the filters.
func (r rules) keep(m Member) bool {
	if len(r.filter.Status) > 0 && !slices.Contains(r.filter.Status, m.Status) {
		return false
	}
	if r.filter.EnabledOnly && m.Disabled {
		return false
	}
	return true
}

func lookupEndpoint(eps map[string]Endpoint, name string) (Endpoint, bool) {
	if e, ok := eps[name]; ok {
		return e, true
	}
	for k, e := range eps {
		if strings.EqualFold(k, name) {
			return e, true
		}
	}
	return Endpoint{}, false
}

// address picks the scrape address of a member.
func (r rules) address(m Member) string {
	rule := m.Defaults
	if r.metrics.picksAddress() {
		rule = MetricsConfig{Endpoint: r.metrics.Endpoint, PortField: r.metrics.PortField, Port: r.metrics.Port}
	}
	host := m.Host
	switch {
	case rule.Port != 0 && host != "":
		return joinHostPort(host, rule.Port)
	case rule.PortField != "" && host != "":
		if p, err := strconv.Atoi(m.Fields[rule.PortField]); err == nil && validPort(p) {
			return joinHostPort(host, p)
		}
	case rule.Endpoint != "":
		if e, ok := lookupEndpoint(m.Endpoints, rule.Endpoint); ok {
			return joinHostPort(e.Host, e.Port)
		}
	}
	if m.Address != "" {
		return m.Address
	}
	return joinHostPort(m.Host, m.Port)
}

// target builds a member's label set: its own labels, the address, the
// scrape settings and the job's labels. Labels Prometheus would reject
// make an *InvalidError.
func (r rules) target(m Member) (model.LabelSet, error) {
	for k, v := range m.Labels {
		if !k.IsValidLegacy() || !v.IsValid() {
			return nil, invalid(ReasonBadLabel, "label %s=%q is not valid", k, v)
		}
	}
	l := make(model.LabelSet, len(m.Labels)+len(r.labels)+4)
	for k, v := range m.Labels {
		l[k] = v
	}
	l[model.AddressLabel] = model.LabelValue(r.address(m))
	scheme, path, params := m.Defaults.Scheme, m.Defaults.Path, m.Defaults.Params
	if r.metrics.Scheme != "" {
		scheme = r.metrics.Scheme
	}
	if r.metrics.Path != "" {
		path = r.metrics.Path
	}
	if r.metrics.Params != nil {
		params = r.metrics.Params
	}
	if scheme != "" {
		l[model.SchemeLabel] = model.LabelValue(scheme)
	}
	if path != "" {
		l[model.MetricsPathLabel] = model.LabelValue(path)
	}
	for k, v := range params {
		l[model.LabelName(model.ParamLabelPrefix+k)] = model.LabelValue(v)
	}
	for k, v := range r.labels {
		l[k] = v
	}
	if a := l[model.AddressLabel]; !a.IsValid() {
		return nil, invalid(ReasonNoAddress, "address %q is not valid", a)
	}
	return l, nil
}

// render encodes one target as a file_sd list element: exactly what
// json.Marshal makes of its targetgroup.Group (labels sorted by name, the
// same escaping; FuzzRender compares them), written directly because it
// runs for every target of every sync.
func render(l model.LabelSet) []byte {
	names := make([]string, 0, len(l))
	// The size without escapes, exactly: entries are held for as long as
	// their targets live, 100,000 of them at a time.
	size := len(`{"targets":[""],"labels":{}}`)
	for k, v := range l {
		if k == model.AddressLabel {
			size += len(v)
			continue
		}
		names = append(names, string(k))
		size += len(k) + len(v) + len(`"":"",`)
	}
	if len(names) > 0 {
		size-- // no comma after the last label
	}
	slices.Sort(names)
	b := make([]byte, 0, size)
	b = append(b, `{"targets":[`...)
	b = appendJSONString(b, string(l[model.AddressLabel]))
	b = append(b, `],"labels":{`...)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, string(l[model.LabelName(k)]))
	}
	return append(b, "}}"...)
}

// appendJSONString appends s as encoding/json writes a string: quotes,
// backslashes and control characters escaped, <, > and & as \u00XX, invalid
// UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
