// Package discovery turns registrations that services keep in ZooKeeper
// into Prometheus targets: one small parser per registration format, a
// job engine over the session layer's tree cache, and the file_sd and
// http_sd outputs Prometheus reads.
package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// Node is one znode as a format sees it.
type Node struct {
	Path   string // full path below the connect string's chroot
	Name   string // last element of Path
	Parent string // name of the parent znode
	Data   []byte // nil when the format does not read data
}

// Endpoint is a named host and port a member advertises besides its main
// address (a serverset additional endpoint, a Kafka listener, ...).
type Endpoint struct {
	Host string
	Port int
}

// Member is one registered instance, decoded by a format.
type Member struct {
	// Host and Port are the address the member advertises.
	Host string
	Port int
	// Address, when set, is used as is instead of Host:Port (targets that
	// a registration names directly, as in the zkprom format).
	Address string
	// Endpoints are named alternatives a metrics rule can pick.
	Endpoints map[string]Endpoint
	// Fields are payload values (metadata) a metrics rule can take the
	// port from.
	Fields map[string]string
	// Status is what a status filter looks at (serverset status, Spring
	// instance_status); Disabled is Curator's enabled=false.
	Status   string
	Disabled bool
	// Labels are the member's own labels (__meta_* and, for the zkprom
	// format, the labels it carries).
	Labels model.LabelSet
	// Defaults are the natural metrics address rules of the member's kind
	// (applied unless the job configures its own).
	Defaults MetricsConfig
	// Group is the target group the member belongs to; default: the
	// parent znode.
	Group string
	// Key, when set, de-duplicates: members with the same key yield one
	// target (a Dubbo 2 process exports one znode per interface).
	Key string
}

// Format decodes one registration format.
type Format interface {
	// Name is the name used in configs and labels.
	Name() string
	// Tree says how much of the tree below each path the format needs.
	Tree() TreeNeeds
	// Parse decodes one znode. A znode that is not a member (a folder, a
	// sibling such as Dubbo's consumers) gives (nil, nil). A member that
	// does not decode gives an *InvalidError.
	Parse(n Node) ([]Member, error)
}

// Merger is implemented by formats whose members de-duplicate (Member.Key):
// it folds members with one key, sorted by path, into one.
type Merger interface {
	Merge(ms []Member) Member
}

// propsFormat is implemented by formats whose members take their scheme
// from a znode beside each of the job's paths (Solr's clusterprops.json).
// The job watches that znode and re-reads its members when it changes;
// an explicit metrics.scheme still wins.
type propsFormat interface {
	// PropsPath is the znode that holds the defaults of the members
	// below root (one of the job's paths).
	PropsPath(root string) string
	// ParseProps decodes that znode's data (nil when it does not exist)
	// into a scheme ("" none: Prometheus's default, http).
	ParseProps(data []byte) (scheme string, err error)
}

// TreeNeeds is how deep below each path a format looks and whether it
// reads znode data.
type TreeNeeds struct {
	MaxDepth int // 0: the whole subtree
	Data     bool
	// DefaultPaths are used when a job names no paths (nil: paths are
	// required).
	DefaultPaths []string
}

// Reasons an invalid member is skipped (the reason label of
// zkprom_sd_invalid_members_total).
const (
	ReasonMalformed = "malformed"  // the data or name does not decode
	ReasonNoAddress = "no_address" // it decodes but names no usable host and port
	ReasonBadLabel  = "bad_label"  // a label name or value Prometheus would reject, or one a registration may not set
	ReasonTooLarge  = "too_large"  // over one of the job's limits (targets, label bytes)
)

// Reasons lists every reason, for documentation.
var reasons = []string{ReasonMalformed, ReasonNoAddress, ReasonBadLabel, ReasonTooLarge}

// InvalidError says why a member was skipped.
type InvalidError struct {
	Reason string
	Err    error
}

func (e *InvalidError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(reason, format string, args ...any) error {
	return &InvalidError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the reason of an *InvalidError, else malformed.
func ReasonOf(err error) string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ReasonMalformed
}

// Formats returns every format by name.
func Formats() map[string]Format {
	fs := []Format{
		serversetFormat{}, nerveFormat{}, curatorFormat{}, dubboFormat{},
		kafkaFormat{}, solrFormat{}, hbaseFormat{}, druidFormat{}, zkpromFormat{},
	}
	m := make(map[string]Format, len(fs))
	for _, f := range fs {
		m[f.Name()] = f
	}
	return m
}

// FormatNames returns the format names, sorted.
func FormatNames() []string {
	var names []string
	for n := range Formats() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Label helpers.
const (
	metaPrefix  = model.MetaLabelPrefix + "zookeeper_"
	labelPath   = metaPrefix + "path"
	labelFormat = metaPrefix + "format"
)

func commonLabels(format, path string) model.LabelSet {
	return model.LabelSet{labelPath: model.LabelValue(path), labelFormat: model.LabelValue(format)}
}

// sanitize turns s into a valid label name fragment, as Prometheus's
// strutil.SanitizeLabelName does: every character outside [a-zA-Z0-9_]
// becomes '_'.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func validPort(p int) bool { return p > 0 && p <= 65535 }

// validHost rejects empty hosts and hosts that would make a broken
// address.
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, " /\t\r\n") && len(h) <= 255 && utf8.ValidString(h)
}

func joinHostPort(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }

func itoa(i int) model.LabelValue { return model.LabelValue(strconv.Itoa(i)) }

// isEmpty reports data that carries nothing: folders in every JSON format.
func isEmpty(data []byte) bool { return len(bytes.TrimSpace(data)) == 0 }
