package exporter

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// page is what one scrape exposes: families by name, each with its series
// in the order they were added.
type page struct {
	families map[string]*pageFamily
	servers  int    // on the page: most families have a series for each
	refused  int    // series left out: a label value is not UTF-8
	first    string // the family of the first of them
}

type pageFamily struct {
	help    string
	kind    familyKind
	samples []sample
}

type familyKind int

const (
	familyGauge familyKind = iota
	familyCounter
	familySummary
)

var kindNames = [...]string{familyGauge: "gauge", familyCounter: "counter", familySummary: "summary"}

// sample is one series: labels encoded (see labelSet), a gauge's or
// counter's value, or a summary's sum, count and quantiles.
type sample struct {
	labels    string
	value     float64
	count     uint64
	quantiles []quantile
}

type quantile struct {
	label string // the quantile, as written: "0.5"
	value float64
}

func newPage(servers int) *page {
	return &page{families: make(map[string]*pageFamily, 256), servers: servers}
}

// family returns family name to add a series to, made with help and kind
// if the page has none by that name. It is nil when the name is taken with
// another help or kind, or by a summary's _sum or _count (or is a summary
// whose _sum or _count is taken): every family of a page has one meaning,
// as a registry would insist.
func (p *page) family(name, help string, kind familyKind) *pageFamily {
	if f, ok := p.families[name]; ok {
		if f.help != help || f.kind != kind {
			return nil
		}
		return f
	}
	for _, suffix := range []string{"_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := p.families[base]; ok && f.kind == familySummary {
				return nil
			}
		}
		if _, ok := p.families[name+suffix]; ok && kind == familySummary {
			return nil
		}
	}
	f := &pageFamily{help: help, kind: kind, samples: make([]sample, 0, p.servers)}
	p.families[name] = f
	return f
}

func (p *page) refuse(family string) {
	if p.refused == 0 {
		p.first = family
	}
	p.refused++
}

// appendText appends the page in the Prometheus text format (0.0.4),
// families sorted by name.
func (p *page) appendText(b []byte) []byte {
	names := make([]string, 0, len(p.families))
	for name, f := range p.families {
		if len(f.samples) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		f := p.families[name]
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, kindNames[f.kind]...)
		b = append(b, '\n')
		for _, s := range f.samples {
			if f.kind != familySummary {
				b = appendLine(b, name, "", s.labels, "", s.value)
				continue
			}
			for _, q := range s.quantiles {
				b = appendLine(b, name, "", s.labels, q.label, q.value)
			}
			b = appendLine(b, name, "_sum", s.labels, "", s.value)
			b = append(b, name...)
			b = append(b, "_count"...)
			b = append(b, s.labels...)
			b = append(b, ' ')
			b = strconv.AppendUint(b, s.count, 10)
			b = append(b, '\n')
		}
	}
	return b
}

// appendLine appends one sample line; a quantile is added to the labels.
func appendLine(b []byte, name, suffix, labels, quantile string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	switch {
	case quantile == "":
		b = append(b, labels...)
	case labels == "":
		b = append(b, `{quantile="`...)
		b = append(b, quantile...)
		b = append(b, `"}`...)
	default:
		b = append(b, labels[:len(labels)-1]...)
		b = append(b, `,quantile="`...)
		b = append(b, quantile...)
		b = append(b, `"}`...)
	}
	b = append(b, ' ')
	b = strconv.AppendFloat(b, v, 'g', -1, 64) // NaN, +Inf and -Inf as the format spells them
	return append(b, '\n')
}

// appendEscaped appends s escaped for a label value (quoted) or a help
// text; invalid UTF-8 in a help text (it names a server's key) is
// replaced.
func appendEscaped(b []byte, s string, quoted bool) []byte {
	if !quoted && !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quoted:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
