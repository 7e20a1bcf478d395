package discovery

import (
	"bytes"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/discovery.md")

const docPath = "../../docs/discovery.md"

type labelDoc struct{ name, help string }

// formatDocs documents each format: what it reads and the labels it
// gives. TestLabelsDocumented checks that the parsers give no label that
// is not listed here.
var formatDocs = []struct {
	format, reads, address string
	labels                 []labelDoc
}{
	{"serverset", "Finagle / Aurora serversets: znodes (Finagle names them `member_<seq>`) holding `{\"serviceEndpoint\":{\"host\",\"port\"},\"additionalEndpoints\":{...},\"status\",\"shard\"}`, at any depth.",
		"`serviceEndpoint` (as Prometheus); `metrics.endpoint: NAME` picks an additional endpoint",
		[]labelDoc{
			{"__meta_serverset_path", "the member's znode path"},
			{"__meta_serverset_endpoint_host", "serviceEndpoint host"},
			{"__meta_serverset_endpoint_port", "serviceEndpoint port"},
			{"__meta_serverset_endpoint_host_<name>", "host of additional endpoint <name> (sanitized)"},
			{"__meta_serverset_endpoint_port_<name>", "port of additional endpoint <name>"},
			{"__meta_serverset_status", "status (ALIVE, STARTING, ...); filter with `filter.status`"},
			{"__meta_serverset_shard", "shard number"},
		}},
	{"nerve", "Airbnb Nerve: znodes holding `{\"host\",\"port\",\"name\"}`, at any depth.",
		"host:port (as Prometheus); `metrics.port` for a fixed port",
		[]labelDoc{
			{"__meta_nerve_path", "the member's znode path"},
			{"__meta_nerve_endpoint_host", "host"},
			{"__meta_nerve_endpoint_port", "port"},
			{"__meta_nerve_endpoint_name", "name"},
		}},
	{"curator", "Apache Curator x-discovery `<path>/<service>/<id>` (also Spring Cloud Zookeeper and Dubbo 3, told apart by `payload.@class`).",
		"address:port; https on the sslPort when port is missing, or when the uriSpec starts with a literal `https` (then the sslPort if set, else the port); Spring: path `/actuator/prometheus`; Dubbo 3: port 22222, path `/metrics`; `metrics.port_field` takes the port from payload metadata",
		[]labelDoc{
			{"__meta_zookeeper_curator_name", "service name"},
			{"__meta_zookeeper_curator_id", "instance id"},
			{"__meta_zookeeper_curator_address", "address"},
			{"__meta_zookeeper_curator_port", "port (when set)"},
			{"__meta_zookeeper_curator_ssl_port", "sslPort (when set)"},
			{"__meta_zookeeper_curator_service_type", "DYNAMIC, DYNAMIC_SEQUENTIAL, STATIC or PERMANENT"},
			{"__meta_zookeeper_curator_registration_time_utc", "registration time, milliseconds since the epoch"},
			{"__meta_zookeeper_curator_enabled", "`true` unless registered with enabled=false (missing means true); filter with `filter.enabled_only`"},
			{"__meta_zookeeper_curator_kind", "`spring`, `dubbo` or `curator`, from payload.@class"},
			{"__meta_zookeeper_curator_payload_class", "payload.@class"},
			{"__meta_zookeeper_curator_uri_spec", "the uriSpec rendered as Curator does (`{scheme}` is https when sslPort is set; unknown variables empty), when set; a uriSpec of another shape is left out"},
			{"__meta_zookeeper_curator_metadata_<key>", "each payload.metadata entry (Spring's instance_status, Dubbo's dubbo.endpoints, ...); Spring's instance_status is what `filter.status` checks"},
			{"__meta_zookeeper_curator_payload_<key>", "each scalar field of a generic payload (a JSON object without a Spring or Dubbo class, as ServiceDiscoveryBuilder.builder(Map.class) writes); keys that sanitize to one name: the first in sorted order wins"},
		}},
	{"dubbo", "Dubbo 2 interface-level `/dubbo/<interface>/providers/<URL-encoded dubbo:// URL>`; one target per process (host + application).",
		"host:22222 (QoS port), path `/metrics`; `metrics.endpoint: dubbo` for the service port",
		[]labelDoc{
			{"__meta_zookeeper_dubbo_host", "provider host"},
			{"__meta_zookeeper_dubbo_port", "provider port"},
			{"__meta_zookeeper_dubbo_protocol", "URL scheme (dubbo, tri, ...)"},
			{"__meta_zookeeper_dubbo_application", "application"},
			{"__meta_zookeeper_dubbo_interfaces", "every interface the process exports, `,a,b,`"},
			{"__meta_zookeeper_dubbo_side", "side"},
			{"__meta_zookeeper_dubbo_dubbo", "Dubbo protocol version"},
			{"__meta_zookeeper_dubbo_release", "Dubbo release"},
			{"__meta_zookeeper_dubbo_pid", "process id"},
		}},
	{"kafka", "Kafka brokers (ZooKeeper mode) `/brokers/ids/<id>`; `endpoints` when host/port are null/-1 (no PLAINTEXT listener).",
		"the PLAINTEXT host:port, else the first endpoint; `metrics.port` for a JMX exporter agent, `metrics.endpoint` for a listener, `metrics.port_field: jmx_port`",
		[]labelDoc{
			{"__meta_zookeeper_kafka_broker_id", "broker id"},
			{"__meta_zookeeper_kafka_host", "host of the chosen listener"},
			{"__meta_zookeeper_kafka_port", "port of the chosen listener"},
			{"__meta_zookeeper_kafka_listener", "name of the chosen listener"},
			{"__meta_zookeeper_kafka_security_protocol", "its security protocol"},
			{"__meta_zookeeper_kafka_endpoint_<listener>", "host:port of each listener (lower case)"},
			{"__meta_zookeeper_kafka_jmx_port", "JMX port (when set)"},
			{"__meta_zookeeper_kafka_rack", "rack (when set)"},
			{"__meta_zookeeper_kafka_version", "registration version"},
		}},
	{"solr", "Solr `live_nodes/<host>:<port>_<context>`, names only; the scheme from `clusterprops.json` beside `live_nodes` (watched).",
		"host:port, path `/<context>/admin/metrics`, param `wt=prometheus` (Solr 9.7+); `__scheme__` is clusterprops.json's `urlScheme` (http when unset or unreadable; `metrics.scheme` wins)",
		[]labelDoc{
			{"__meta_zookeeper_solr_node_name", "live node name"},
			{"__meta_zookeeper_solr_host", "host"},
			{"__meta_zookeeper_solr_port", "port"},
			{"__meta_zookeeper_solr_context", "context (URL-decoded)"},
		}},
	{"hbase", "HBase `/hbase/rs/<host>,<port>,<startcode>`, `/hbase/backup-masters/*` and `/hbase/master` (with `paths: [/hbase]`): binary (0xFF, id, PBUF, protobuf).",
		"host:info_port (16030 region servers, 16010 masters when absent), path `/prometheus`",
		[]labelDoc{
			{"__meta_zookeeper_hbase_role", "regionserver, master or backup_master"},
			{"__meta_zookeeper_hbase_host", "host"},
			{"__meta_zookeeper_hbase_rpc_port", "RPC port"},
			{"__meta_zookeeper_hbase_info_port", "info (HTTP) port"},
			{"__meta_zookeeper_hbase_start_code", "start code"},
			{"__meta_zookeeper_hbase_server_name", "host,port,startcode"},
		}},
	{"druid", "Druid `/druid/internal-discovery/<role>/<host:port>`, gzip or plain JSON.",
		"host:plaintextPort, else host:tlsPort with https",
		[]labelDoc{
			{"__meta_zookeeper_druid_role", "role (the parent znode)"},
			{"__meta_zookeeper_druid_node_type", "nodeType"},
			{"__meta_zookeeper_druid_service", "druidNode.service"},
			{"__meta_zookeeper_druid_host", "druidNode.host"},
			{"__meta_zookeeper_druid_plaintext_port", "plaintext port (when enabled)"},
			{"__meta_zookeeper_druid_tls_port", "TLS port (when enabled)"},
		}},
	{"zkprom", "znodes holding a file_sd-style group `{\"targets\":[...],\"labels\":{...}}` (or a list of them), at any depth: what `zkprom register` writes.",
		"each target as given; the group's labels are target labels",
		nil},
}

var common = []labelDoc{
	{"__meta_zookeeper_path", "the member's znode path (relative to the chroot)"},
	{"__meta_zookeeper_format", "the job's format"},
}

func formatsTable() string {
	var b strings.Builder
	b.WriteString("| format | reads | default paths | depth | data | metrics address by default |\n|---|---|---|---|---|---|\n")
	fs := Formats()
	for _, d := range formatDocs {
		t := fs[d.format].Tree()
		depth := "any"
		if t.MaxDepth > 0 {
			depth = fmt.Sprint(t.MaxDepth)
		}
		paths := "(required)"
		if len(t.DefaultPaths) > 0 {
			paths = "`" + strings.Join(t.DefaultPaths, "`, `") + "`"
		}
		data := "no"
		if t.Data {
			data = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", d.format, d.reads, paths, depth, data, d.address)
	}
	return b.String()
}

func labelsTable() string {
	var b strings.Builder
	for _, d := range formatDocs {
		fmt.Fprintf(&b, "### %s\n\n| label | meaning |\n|---|---|\n", d.format)
		ls := d.labels
		if d.format != "serverset" && d.format != "nerve" {
			ls = append(append([]labelDoc{}, common...), ls...)
		}
		for _, l := range ls {
			fmt.Fprintf(&b, "| `%s` | %s |\n", l.name, l.help)
		}
		if d.format == "serverset" || d.format == "nerve" {
			b.WriteString("\nExactly the labels of Prometheus's built-in `" + d.format + "_sd_configs` (checked against a real Prometheus by TestSameAsPrometheus).\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func metricsTable() string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | help |\n|---|---|---|---|\n")
	re := regexp.MustCompile(`fqName: "([^"]+)", help: "([^"]+)",.*variableLabels: \{([^}]*)\}`)
	for _, d := range allDescs {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		typ := "gauge"
		if strings.HasSuffix(m[1], "_total") {
			typ = "counter"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m[1], typ, m[3], m[2])
	}
	b.WriteString("| `zkprom_zookeeper_session_state` and other `zkprom_zookeeper_*` | | `zookeeper` (connect string) | the session of each connect string (see the session layer) |\n")
	return b.String()
}

// replaceGenerated swaps the text between <!-- BEGIN name --> and
// <!-- END name -->.
func replaceGenerated(doc, name, body string) (string, error) {
	begin := "<!-- BEGIN GENERATED " + name + " (doc_test.go; do not edit) -->\n"
	end := "<!-- END GENERATED " + name + " -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("%s has no generated section %q", docPath, name)
	}
	return doc[:i+len(begin)] + body + doc[j:], nil
}

// TestDocumentation keeps the generated tables of docs/discovery.md equal
// to the code (go test ./internal/discovery -run TestDocumentation -update).
func TestDocumentation(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, s := range []struct{ name, body string }{
		{"formats", formatsTable()}, {"labels", labelsTable()}, {"metrics", metricsTable()},
	} {
		if doc, err = replaceGenerated(doc, s.name, s.body); err != nil {
			t.Fatal(err)
		}
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(raw, []byte(doc)) {
		t.Fatalf("%s is out of date with the code: run go test ./internal/discovery -run TestDocumentation -update", docPath)
	}
}

// TestLabelsDocumented: every label the parsers give for the table
// tests' payloads is in the documentation, and every format is there.
func TestLabelsDocumented(t *testing.T) {
	documented := map[string][]*regexp.Regexp{}
	for _, d := range formatDocs {
		for _, l := range append(append([]labelDoc{}, common...), d.labels...) {
			documented[d.format] = append(documented[d.format], regexp.MustCompile("^"+regexp.MustCompile(`<[a-z]+>`).ReplaceAllString(regexp.QuoteMeta(l.name), `[a-zA-Z0-9_]+`)+"$"))
		}
	}
	if len(documented) != len(Formats()) {
		t.Errorf("%d formats documented, %d exist", len(documented), len(Formats()))
	}
	samples := map[string][]Node{
		"serverset": {node("/a/member_1", []byte(`{"serviceEndpoint":{"host":"h","port":1},"additionalEndpoints":{"http-admin":{"host":"h","port":2}},"status":"ALIVE","shard":1}`))},
		"nerve":     {node("/a/b", []byte(`{"host":"h","port":1,"name":"n"}`))},
		"curator":   {node("/s/a/b", []byte(`{"name":"a","id":"b","address":"h","port":1,"sslPort":2,"payload":{"@class":"x","metadata":{"k.e-y":"v"}},"registrationTimeUTC":1,"serviceType":"DYNAMIC","enabled":false}`))},
		"dubbo":     {node("/dubbo/i/providers/"+url.QueryEscape("dubbo://h:1/i?application=a&side=provider&dubbo=2.0.2&release=2.7&pid=1"), nil)},
		"kafka":     {node("/brokers/ids/1", []byte(`{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://h:1"],"jmx_port":2,"host":"h","port":1,"version":5,"rack":"r"}`))},
		"solr":      {node("/live_nodes/h:1_solr", nil)},
		"hbase":     {node("/hbase/rs/h,1,2", hbaseData("x", []byte{0x08, 0x9e, 0x7d}))},
		"druid":     {node("/d/broker/h:1", []byte(`{"druidNode":{"service":"s","host":"h","plaintextPort":1,"tlsPort":2},"nodeType":"broker"}`))},
		"zkprom":    {node("/z/a", []byte(`{"targets":["h:1"]}`))},
	}
	for format, nodes := range samples {
		for _, n := range nodes {
			ms, err := Formats()[format].Parse(n)
			if err != nil || len(ms) == 0 {
				t.Fatalf("%s sample: %v %v", format, ms, err)
			}
			var names []string
			for k := range ms[0].Labels {
				names = append(names, string(k))
			}
			sort.Strings(names)
		next:
			for _, name := range names {
				for _, re := range documented[format] {
					if re.MatchString(name) {
						continue next
					}
				}
				t.Errorf("%s: label %s is not documented", format, name)
			}
		}
	}
}
