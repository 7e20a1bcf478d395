package discovery

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"net/url"
	"reflect"
	"testing"

	"github.com/prometheus/common/model"
)

type parseCase struct {
	name    string
	node    Node
	want    []model.LabelSet // targets after the job's default rules; nil: not a member
	reason  string           // expected invalid reason
	job     JobConfig
	dropped bool // filtered by the job's rules
}

func node(path string, data []byte) Node {
	dir, name := path[:bytes.LastIndexByte([]byte(path), '/')], path[bytes.LastIndexByte([]byte(path), '/')+1:]
	parent := dir[bytes.LastIndexByte([]byte(dir), '/')+1:]
	return Node{Path: path, Name: name, Parent: parent, Data: data}
}

func runCases(t *testing.T, f Format, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := f.Parse(tc.node)
			if tc.reason != "" {
				var ie *InvalidError
				if !errors.As(err, &ie) || ie.Reason != tc.reason {
					t.Fatalf("want invalid %q, got members %v err %v", tc.reason, ms, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			r := newRules(tc.job)
			var got []model.LabelSet
			for _, m := range ms {
				if r.keep(m) {
					l, err := r.target(m)
					if err != nil {
						t.Fatalf("target: %v", err)
					}
					got = append(got, l)
				}
			}
			if tc.dropped {
				if len(got) != 0 {
					t.Fatalf("want filtered, got %v", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("targets differ\n got: %v\nwant: %v", got, tc.want)
			}
		})
	}
}

func TestServerset(t *testing.T) {
	aurora := []byte(`{"serviceEndpoint": {"host": "10.0.0.1", "port": 31000}, "additionalEndpoints": {"aurora": {"host": "10.0.0.1", "port": 31000}, "health": {"host": "10.0.0.1", "port": 31001}, "http-admin": {"host": "10.0.0.1", "port": 31002}}, "status": "ALIVE", "shard": 3}`)
	base := model.LabelSet{
		"__address__":                               "10.0.0.1:31000",
		"__meta_serverset_path":                     "/aurora/www/prod/web/member_0000000003",
		"__meta_serverset_endpoint_host":            "10.0.0.1",
		"__meta_serverset_endpoint_port":            "31000",
		"__meta_serverset_endpoint_host_aurora":     "10.0.0.1",
		"__meta_serverset_endpoint_port_aurora":     "31000",
		"__meta_serverset_endpoint_host_health":     "10.0.0.1",
		"__meta_serverset_endpoint_port_health":     "31001",
		"__meta_serverset_endpoint_host_http_admin": "10.0.0.1",
		"__meta_serverset_endpoint_port_http_admin": "31002",
		"__meta_serverset_status":                   "ALIVE",
		"__meta_serverset_shard":                    "3",
	}
	withAddr := func(a string, extra model.LabelSet) model.LabelSet {
		l := base.Clone()
		l["__address__"] = model.LabelValue(a)
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	p := "/aurora/www/prod/web/member_0000000003"
	runCases(t, serversetFormat{}, []parseCase{
		{name: "aurora", node: node(p, aurora), want: []model.LabelSet{base}},
		{name: "named endpoint", node: node(p, aurora), job: JobConfig{Metrics: MetricsConfig{Endpoint: "health", Path: "/vars"}},
			want: []model.LabelSet{withAddr("10.0.0.1:31001", model.LabelSet{"__metrics_path__": "/vars"})}},
		{name: "missing endpoint falls back", node: node(p, aurora), job: JobConfig{Metrics: MetricsConfig{Endpoint: "metrics"}},
			want: []model.LabelSet{base}},
		{name: "fixed port and labels", node: node(p, aurora), job: JobConfig{Metrics: MetricsConfig{Port: 9100, Scheme: "https", Params: map[string]string{"module": "x"}}, Labels: map[string]string{"env": "prod"}},
			want: []model.LabelSet{withAddr("10.0.0.1:9100", model.LabelSet{"__scheme__": "https", "__param_module": "x", "env": "prod"})}},
		{name: "status filter keeps", node: node(p, aurora), job: JobConfig{Filter: FilterConfig{Status: []string{"ALIVE"}}}, want: []model.LabelSet{base}},
		{name: "status filter drops", node: node(p, []byte(`{"serviceEndpoint":{"host":"h","port":1},"status":"STOPPING"}`)),
			job: JobConfig{Filter: FilterConfig{Status: []string{"ALIVE"}}}, dropped: true},
		{name: "finagle no status no shard", node: node("/s/member_0000000001", []byte(`{"serviceEndpoint":{"host":"web-1.example.com","port":8080},"additionalEndpoints":{},"status":"ALIVE"}`)),
			want: []model.LabelSet{{
				"__address__": "web-1.example.com:8080", "__meta_serverset_path": "/s/member_0000000001",
				"__meta_serverset_endpoint_host": "web-1.example.com", "__meta_serverset_endpoint_port": "8080",
				"__meta_serverset_status": "ALIVE", "__meta_serverset_shard": "0"}}},
		{name: "ipv6", node: node("/s/member_1", []byte(`{"serviceEndpoint":{"host":"::1","port":80},"status":"ALIVE"}`)),
			want: []model.LabelSet{{
				"__address__": "[::1]:80", "__meta_serverset_path": "/s/member_1",
				"__meta_serverset_endpoint_host": "::1", "__meta_serverset_endpoint_port": "80",
				"__meta_serverset_status": "ALIVE", "__meta_serverset_shard": "0"}}},
		{name: "folder", node: node("/aurora/www", nil)},
		{name: "empty object", node: node(p, []byte(`{}`)), reason: ReasonNoAddress},
		{name: "null", node: node(p, []byte(`null`)), reason: ReasonNoAddress},
		{name: "port zero", node: node(p, []byte(`{"serviceEndpoint":{"host":"h","port":0}}`)), reason: ReasonNoAddress},
		{name: "string port", node: node(p, []byte(`{"serviceEndpoint":{"host":"h","port":"80"}}`)), reason: ReasonMalformed},
		{name: "binary", node: node(p, []byte{0xff, 0, 1, 2}), reason: ReasonMalformed},
		{name: "nerve payload", node: node(p, []byte(`{"host":"h","port":1,"name":"x"}`)), reason: ReasonNoAddress},
	})
}

func TestNerve(t *testing.T) {
	p := "/nerve/services/web/services/i-0abc_0000000012"
	runCases(t, nerveFormat{}, []parseCase{
		{name: "nerve", node: node(p, []byte(`{"host":"10.1.2.3","port":8080,"name":"i-0abc","weight":1,"haproxy_server_options":"backup"}`)),
			want: []model.LabelSet{{
				"__address__": "10.1.2.3:8080", "__meta_nerve_path": model.LabelValue(p),
				"__meta_nerve_endpoint_host": "10.1.2.3", "__meta_nerve_endpoint_port": "8080", "__meta_nerve_endpoint_name": "i-0abc"}}},
		{name: "fixed port", node: node(p, []byte(`{"host":"10.1.2.3","port":8080,"name":"i-0abc"}`)), job: JobConfig{Metrics: MetricsConfig{Port: 9100}},
			want: []model.LabelSet{{
				"__address__": "10.1.2.3:9100", "__meta_nerve_path": model.LabelValue(p),
				"__meta_nerve_endpoint_host": "10.1.2.3", "__meta_nerve_endpoint_port": "8080", "__meta_nerve_endpoint_name": "i-0abc"}}},
		{name: "empty object", node: node(p, []byte(`{}`)), reason: ReasonNoAddress},
		{name: "junk", node: node(p, []byte(`not json`)), reason: ReasonMalformed},
		{name: "array", node: node(p, []byte(`[1,2]`)), reason: ReasonMalformed},
	})
}

func TestCurator(t *testing.T) {
	generic := []byte(`{"name":"orders","id":"b5e4b0d2-2d6f-4a5e-9d1c-6c1e2f0a9b11","address":"10.0.0.5","port":8080,"sslPort":null,"payload":null,"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]}}`)
	spring := []byte(`{"name":"billing","id":"0f3c2a4e-6f43-4d2b-a4f8-8b3d2e1c0a77","address":"billing-7d9f.example.com","port":8081,"sslPort":null,"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"billing-1","name":"billing","metadata":{"instance_status":"UP","management.port":"9081"}},"registrationTimeUTC":1700000000001,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]},"enabled":true}`)
	springOOS := bytes.Replace(spring, []byte(`"UP"`), []byte(`"OUT_OF_SERVICE"`), 1)
	dubbo3 := []byte(`{"name":"demo-provider","id":"10.0.0.9:20880","address":"10.0.0.9","port":20880,"sslPort":null,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"10.0.0.9:20880","name":"demo-provider","metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"}]","dubbo.metadata.revision":"a1b2c3","dubbo.metadata.storage-type":"local"}},"registrationTimeUTC":1700000000002,"serviceType":"DYNAMIC","uriSpec":null}`)
	disabled := []byte(`{"name":"orders","id":"x","address":"10.0.0.6","port":8080,"payload":{"@class":"com.example.Meta","zone":"a"},"serviceType":"DYNAMIC","enabled":false}`)
	sslOnly := []byte(`{"name":"orders","id":"y","address":"10.0.0.7","port":null,"sslPort":8443,"serviceType":"STATIC"}`)
	// "https://{address}:{ssl-port}/{name}/{service-type}/{[}x{]}{unknown}" as Curator stores it.
	httpsSpec := []byte(`{"name":"orders","id":"s1","address":"10.0.0.8","port":8080,"sslPort":8443,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"https://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"ssl-port","variable":true},{"value":"/","variable":false},{"value":"name","variable":true},{"value":"/","variable":false},{"value":"service-type","variable":true},{"value":"/","variable":false},{"value":"[","variable":true},{"value":"x","variable":false},{"value":"]","variable":true},{"value":"unknown","variable":true}]}}`)
	httpsSpecNoSSL := []byte(`{"name":"orders","id":"s2","address":"10.0.0.8","port":9443,"sslPort":null,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"HTTPS://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]}}`)
	schemeVarBoth := []byte(`{"name":"orders","id":"s3","address":"10.0.0.8","port":8080,"sslPort":8443,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]}}`)
	badSpec := []byte(`{"name":"orders","id":"s4","address":"10.0.0.8","port":8080,"serviceType":"DYNAMIC","uriSpec":"https://{address}:{port}"}`)
	badParts := []byte(`{"name":"orders","id":"s5","address":"10.0.0.8","port":8080,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":1,"variable":"no"}]}}`)
	runCases(t, curatorFormat{}, []parseCase{
		{name: "curator without enabled", node: node("/services/orders/b5e4b0d2", generic), want: []model.LabelSet{{
			"__address__": "10.0.0.5:8080", "__meta_zookeeper_path": "/services/orders/b5e4b0d2", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "orders", "__meta_zookeeper_curator_id": "b5e4b0d2-2d6f-4a5e-9d1c-6c1e2f0a9b11",
			"__meta_zookeeper_curator_address": "10.0.0.5", "__meta_zookeeper_curator_port": "8080",
			"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_registration_time_utc": "1700000000000",
			"__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "curator",
			"__meta_zookeeper_curator_uri_spec": "http://10.0.0.5:8080"}}},
		{name: "spring", node: node("/services/billing/0f3c", spring), job: JobConfig{Metrics: MetricsConfig{PortField: "management.port"}, Filter: FilterConfig{Status: []string{"UP"}}},
			want: []model.LabelSet{{
				"__address__": "billing-7d9f.example.com:9081", "__metrics_path__": "/actuator/prometheus",
				"__meta_zookeeper_path": "/services/billing/0f3c", "__meta_zookeeper_format": "curator",
				"__meta_zookeeper_curator_name": "billing", "__meta_zookeeper_curator_id": "0f3c2a4e-6f43-4d2b-a4f8-8b3d2e1c0a77",
				"__meta_zookeeper_curator_address": "billing-7d9f.example.com", "__meta_zookeeper_curator_port": "8081",
				"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_registration_time_utc": "1700000000001",
				"__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "spring",
				"__meta_zookeeper_curator_uri_spec":                 "http://billing-7d9f.example.com:8081",
				"__meta_zookeeper_curator_payload_class":            "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
				"__meta_zookeeper_curator_metadata_instance_status": "UP",
				"__meta_zookeeper_curator_metadata_management_port": "9081"}}},
		{name: "spring out of service", node: node("/services/billing/0f3c", springOOS), job: JobConfig{Filter: FilterConfig{Status: []string{"UP"}}}, dropped: true},
		{name: "dubbo3", node: node("/services/demo-provider/10.0.0.9:20880", dubbo3), want: []model.LabelSet{{
			"__address__": "10.0.0.9:22222", "__metrics_path__": "/metrics",
			"__meta_zookeeper_path": "/services/demo-provider/10.0.0.9:20880", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "demo-provider", "__meta_zookeeper_curator_id": "10.0.0.9:20880",
			"__meta_zookeeper_curator_address": "10.0.0.9", "__meta_zookeeper_curator_port": "20880",
			"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_registration_time_utc": "1700000000002",
			"__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "dubbo",
			"__meta_zookeeper_curator_payload_class":                        "org.apache.dubbo.registry.zookeeper.ZookeeperInstance",
			"__meta_zookeeper_curator_metadata_dubbo_endpoints":             `[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`,
			"__meta_zookeeper_curator_metadata_dubbo_metadata_revision":     "a1b2c3",
			"__meta_zookeeper_curator_metadata_dubbo_metadata_storage_type": "local"}}},
		{name: "disabled dropped", node: node("/services/orders/x", disabled), job: JobConfig{Filter: FilterConfig{EnabledOnly: true}}, dropped: true},
		{name: "ssl only", node: node("/services/orders/y", sslOnly), want: []model.LabelSet{{
			"__address__": "10.0.0.7:8443", "__scheme__": "https",
			"__meta_zookeeper_path": "/services/orders/y", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "orders", "__meta_zookeeper_curator_id": "y",
			"__meta_zookeeper_curator_address": "10.0.0.7", "__meta_zookeeper_curator_ssl_port": "8443",
			"__meta_zookeeper_curator_service_type": "STATIC",
			"__meta_zookeeper_curator_enabled":      "true", "__meta_zookeeper_curator_kind": "curator"}}},
		{name: "https uriSpec takes the ssl port", node: node("/services/orders/s1", httpsSpec), want: []model.LabelSet{{
			"__address__": "10.0.0.8:8443", "__scheme__": "https",
			"__meta_zookeeper_path": "/services/orders/s1", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "orders", "__meta_zookeeper_curator_id": "s1",
			"__meta_zookeeper_curator_address": "10.0.0.8", "__meta_zookeeper_curator_port": "8080", "__meta_zookeeper_curator_ssl_port": "8443",
			"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "curator",
			"__meta_zookeeper_curator_uri_spec": "https://10.0.0.8:8443/orders/dynamic/{x}"}}},
		{name: "https uriSpec without ssl port", node: node("/services/orders/s2", httpsSpecNoSSL), want: []model.LabelSet{{
			"__address__": "10.0.0.8:9443", "__scheme__": "https",
			"__meta_zookeeper_path": "/services/orders/s2", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "orders", "__meta_zookeeper_curator_id": "s2",
			"__meta_zookeeper_curator_address": "10.0.0.8", "__meta_zookeeper_curator_port": "9443",
			"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "curator",
			"__meta_zookeeper_curator_uri_spec": "HTTPS://10.0.0.8:9443"}}},
		{name: "scheme variable with both ports stays on the port", node: node("/services/orders/s3", schemeVarBoth), want: []model.LabelSet{{
			"__address__":           "10.0.0.8:8080",
			"__meta_zookeeper_path": "/services/orders/s3", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "orders", "__meta_zookeeper_curator_id": "s3",
			"__meta_zookeeper_curator_address": "10.0.0.8", "__meta_zookeeper_curator_port": "8080", "__meta_zookeeper_curator_ssl_port": "8443",
			"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "curator",
			"__meta_zookeeper_curator_uri_spec": "https://10.0.0.8:8080"}}},
		{name: "uriSpec of another shape is left out", node: node("/services/orders/s4", badSpec), want: []model.LabelSet{{
			"__address__":           "10.0.0.8:8080",
			"__meta_zookeeper_path": "/services/orders/s4", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "orders", "__meta_zookeeper_curator_id": "s4",
			"__meta_zookeeper_curator_address": "10.0.0.8", "__meta_zookeeper_curator_port": "8080",
			"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "curator"}}},
		{name: "uriSpec with bad parts is left out", node: node("/services/orders/s5", badParts), want: []model.LabelSet{{
			"__address__":           "10.0.0.8:8080",
			"__meta_zookeeper_path": "/services/orders/s5", "__meta_zookeeper_format": "curator",
			"__meta_zookeeper_curator_name": "orders", "__meta_zookeeper_curator_id": "s5",
			"__meta_zookeeper_curator_address": "10.0.0.8", "__meta_zookeeper_curator_port": "8080",
			"__meta_zookeeper_curator_service_type": "DYNAMIC", "__meta_zookeeper_curator_enabled": "true", "__meta_zookeeper_curator_kind": "curator"}}},
		{name: "bad port beside a bad uriSpec", node: node("/services/orders/s6", []byte(`{"name":"orders","id":"s6","address":"10.0.0.8","port":"x","uriSpec":"y"}`)), reason: ReasonMalformed},
		{name: "service folder", node: node("/services/orders", nil)},
		{name: "empty object", node: node("/services/orders/z", []byte(`{}`)), reason: ReasonNoAddress},
		{name: "no port", node: node("/services/orders/z", []byte(`{"name":"a","address":"h","port":null}`)), reason: ReasonNoAddress},
		{name: "junk", node: node("/services/orders/z", []byte("\x00\x01")), reason: ReasonMalformed},
	})
	ms, err := curatorFormat{}.Parse(node("/services/demo-provider/10.0.0.9:20880", dubbo3))
	if err != nil || len(ms) != 1 {
		t.Fatalf("dubbo3: %v %v", ms, err)
	}
	r := newRules(JobConfig{Metrics: MetricsConfig{Endpoint: "tri"}})
	if l, _ := r.target(ms[0]); l["__address__"] != "10.0.0.9:50051" {
		a := l["__address__"]
		t.Errorf("dubbo3 endpoint tri: address %s", a)
	}
	ms, _ = curatorFormat{}.Parse(node("/services/orders/x", disabled))
	if len(ms) != 1 || !ms[0].Disabled || ms[0].Labels["__meta_zookeeper_curator_enabled"] != "false" || ms[0].Labels["__meta_zookeeper_curator_payload_class"] != "com.example.Meta" {
		t.Errorf("disabled: %+v", ms)
	}
}

func TestDubbo(t *testing.T) {
	u1 := "dubbo://10.0.0.5:20880/org.example.DemoService?anyhost=true&application=demo-provider&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=org.example.DemoService&methods=sayHello,sayHelloAsync&pid=4242&release=2.7.23&side=provider&timestamp=1700000000000&version=1.0.0&group=g1"
	u2 := "dubbo://10.0.0.5:20880/org.example.OrderService?application=demo-provider&dubbo=2.0.2&interface=org.example.OrderService&pid=4242&release=2.7.23&side=provider&timestamp=1700000000000"
	p1 := "/dubbo/org.example.DemoService/providers/" + url.QueryEscape(u1)
	p2 := "/dubbo/org.example.OrderService/providers/" + url.QueryEscape(u2)
	runCases(t, dubboFormat{}, []parseCase{
		{name: "provider", node: node(p1, nil), want: []model.LabelSet{{
			"__address__": "10.0.0.5:22222", "__metrics_path__": "/metrics",
			"__meta_zookeeper_path": model.LabelValue(p1), "__meta_zookeeper_format": "dubbo",
			"__meta_zookeeper_dubbo_host": "10.0.0.5", "__meta_zookeeper_dubbo_port": "20880", "__meta_zookeeper_dubbo_protocol": "dubbo",
			"__meta_zookeeper_dubbo_application": "demo-provider", "__meta_zookeeper_dubbo_interfaces": ",org.example.DemoService,",
			"__meta_zookeeper_dubbo_side": "provider", "__meta_zookeeper_dubbo_dubbo": "2.0.2", "__meta_zookeeper_dubbo_release": "2.7.23",
			"__meta_zookeeper_dubbo_pid": "4242"}}},
		{name: "service port", node: node(p1, nil), job: JobConfig{Metrics: MetricsConfig{Endpoint: "dubbo", Path: "/"}}, want: []model.LabelSet{{
			"__address__": "10.0.0.5:20880", "__metrics_path__": "/",
			"__meta_zookeeper_path": model.LabelValue(p1), "__meta_zookeeper_format": "dubbo",
			"__meta_zookeeper_dubbo_host": "10.0.0.5", "__meta_zookeeper_dubbo_port": "20880", "__meta_zookeeper_dubbo_protocol": "dubbo",
			"__meta_zookeeper_dubbo_application": "demo-provider", "__meta_zookeeper_dubbo_interfaces": ",org.example.DemoService,",
			"__meta_zookeeper_dubbo_side": "provider", "__meta_zookeeper_dubbo_dubbo": "2.0.2", "__meta_zookeeper_dubbo_release": "2.7.23",
			"__meta_zookeeper_dubbo_pid": "4242"}}},
		{name: "consumer ignored", node: node("/dubbo/org.example.DemoService/consumers/"+url.QueryEscape("consumer://10.0.0.8/org.example.DemoService?application=c"), nil)},
		{name: "interface folder", node: node("/dubbo/org.example.DemoService", nil)},
		{name: "not a url", node: node("/dubbo/x/providers/hello", nil), reason: ReasonMalformed},
		{name: "bad escape", node: node("/dubbo/x/providers/%zz", nil), reason: ReasonMalformed},
		{name: "no port", node: node("/dubbo/x/providers/"+url.QueryEscape("dubbo://10.0.0.5/x"), nil), reason: ReasonNoAddress},
	})
	// One process, two interfaces: one member after merging.
	a, err := dubboFormat{}.Parse(node(p1, nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := dubboFormat{}.Parse(node(p2, nil))
	if err != nil {
		t.Fatal(err)
	}
	if a[0].Key != b[0].Key {
		t.Fatalf("keys differ: %q %q", a[0].Key, b[0].Key)
	}
	m := dubboFormat{}.Merge([]Member{a[0], b[0]})
	if got := m.Labels["__meta_zookeeper_dubbo_interfaces"]; got != ",org.example.DemoService,org.example.OrderService," {
		t.Errorf("interfaces %q", got)
	}
	if m.Labels["__meta_zookeeper_path"] != model.LabelValue(p1) {
		t.Errorf("merged member should keep the first path")
	}
}

func TestKafka(t *testing.T) {
	plain := []byte(`{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT","SSL":"SSL"},"endpoints":["PLAINTEXT://kafka-1.example.com:9092","SSL://kafka-1.example.com:9093"],"jmx_port":9999,"features":{},"host":"kafka-1.example.com","timestamp":"1700000000000","port":9092,"version":5,"rack":"rack-a"}`)
	noPlain := []byte(`{"listener_security_protocol_map":{"INTERNAL":"SASL_SSL","EXTERNAL":"SASL_SSL"},"endpoints":["INTERNAL://10.0.0.21:9094","EXTERNAL://broker2.example.com:19094"],"jmx_port":-1,"host":null,"timestamp":"1700000000000","port":-1,"version":4}`)
	runCases(t, kafkaFormat{}, []parseCase{
		{name: "plaintext", node: node("/brokers/ids/1", plain), job: JobConfig{Metrics: MetricsConfig{Port: 7071}}, want: []model.LabelSet{{
			"__address__": "kafka-1.example.com:7071", "__meta_zookeeper_path": "/brokers/ids/1", "__meta_zookeeper_format": "kafka",
			"__meta_zookeeper_kafka_broker_id": "1", "__meta_zookeeper_kafka_host": "kafka-1.example.com", "__meta_zookeeper_kafka_port": "9092",
			"__meta_zookeeper_kafka_listener": "PLAINTEXT", "__meta_zookeeper_kafka_security_protocol": "PLAINTEXT",
			"__meta_zookeeper_kafka_endpoint_plaintext": "kafka-1.example.com:9092", "__meta_zookeeper_kafka_endpoint_ssl": "kafka-1.example.com:9093",
			"__meta_zookeeper_kafka_jmx_port": "9999", "__meta_zookeeper_kafka_rack": "rack-a", "__meta_zookeeper_kafka_version": "5"}}},
		{name: "no plaintext listener", node: node("/brokers/ids/2", noPlain), want: []model.LabelSet{{
			"__address__": "10.0.0.21:9094", "__meta_zookeeper_path": "/brokers/ids/2", "__meta_zookeeper_format": "kafka",
			"__meta_zookeeper_kafka_broker_id": "2", "__meta_zookeeper_kafka_host": "10.0.0.21", "__meta_zookeeper_kafka_port": "9094",
			"__meta_zookeeper_kafka_listener": "INTERNAL", "__meta_zookeeper_kafka_security_protocol": "SASL_SSL",
			"__meta_zookeeper_kafka_endpoint_internal": "10.0.0.21:9094", "__meta_zookeeper_kafka_endpoint_external": "broker2.example.com:19094",
			"__meta_zookeeper_kafka_version": "4"}}},
		{name: "jmx port field", node: node("/brokers/ids/1", plain), job: JobConfig{Metrics: MetricsConfig{PortField: "jmx_port"}}, want: []model.LabelSet{{
			"__address__": "kafka-1.example.com:9999", "__meta_zookeeper_path": "/brokers/ids/1", "__meta_zookeeper_format": "kafka",
			"__meta_zookeeper_kafka_broker_id": "1", "__meta_zookeeper_kafka_host": "kafka-1.example.com", "__meta_zookeeper_kafka_port": "9092",
			"__meta_zookeeper_kafka_listener": "PLAINTEXT", "__meta_zookeeper_kafka_security_protocol": "PLAINTEXT",
			"__meta_zookeeper_kafka_endpoint_plaintext": "kafka-1.example.com:9092", "__meta_zookeeper_kafka_endpoint_ssl": "kafka-1.example.com:9093",
			"__meta_zookeeper_kafka_jmx_port": "9999", "__meta_zookeeper_kafka_rack": "rack-a", "__meta_zookeeper_kafka_version": "5"}}},
		{name: "no endpoints", node: node("/brokers/ids/3", []byte(`{"host":null,"port":-1,"endpoints":["PLAINTEXT://:9092"]}`)), reason: ReasonNoAddress},
		{name: "empty object", node: node("/brokers/ids/3", []byte(`{}`)), reason: ReasonNoAddress},
		{name: "junk", node: node("/brokers/ids/3", []byte(`{"endpoints":"x"}`)), reason: ReasonMalformed},
	})
}

func TestSolr(t *testing.T) {
	runCases(t, solrFormat{}, []parseCase{
		{name: "live node", node: node("/live_nodes/10.0.0.7:8983_solr", nil), want: []model.LabelSet{{
			"__address__": "10.0.0.7:8983", "__metrics_path__": "/solr/admin/metrics", "__param_wt": "prometheus",
			"__meta_zookeeper_path": "/live_nodes/10.0.0.7:8983_solr", "__meta_zookeeper_format": "solr",
			"__meta_zookeeper_solr_node_name": "10.0.0.7:8983_solr", "__meta_zookeeper_solr_host": "10.0.0.7",
			"__meta_zookeeper_solr_port": "8983", "__meta_zookeeper_solr_context": "solr"}}},
		{name: "https and context", node: node("/live_nodes/solr-2.example.com:8984_api%2Fsolr", nil), job: JobConfig{Metrics: MetricsConfig{Scheme: "https"}}, want: []model.LabelSet{{
			"__address__": "solr-2.example.com:8984", "__scheme__": "https", "__metrics_path__": "/api/solr/admin/metrics", "__param_wt": "prometheus",
			"__meta_zookeeper_path": "/live_nodes/solr-2.example.com:8984_api%2Fsolr", "__meta_zookeeper_format": "solr",
			"__meta_zookeeper_solr_node_name": "solr-2.example.com:8984_api%2Fsolr", "__meta_zookeeper_solr_host": "solr-2.example.com",
			"__meta_zookeeper_solr_port": "8984", "__meta_zookeeper_solr_context": "api/solr"}}},
		{name: "ipv6", node: node("/live_nodes/[::1]:8983_solr", nil), want: []model.LabelSet{{
			"__address__": "[::1]:8983", "__metrics_path__": "/solr/admin/metrics", "__param_wt": "prometheus",
			"__meta_zookeeper_path": "/live_nodes/[::1]:8983_solr", "__meta_zookeeper_format": "solr",
			"__meta_zookeeper_solr_node_name": "[::1]:8983_solr", "__meta_zookeeper_solr_host": "::1",
			"__meta_zookeeper_solr_port": "8983", "__meta_zookeeper_solr_context": "solr"}}},
		{name: "no context", node: node("/live_nodes/10.0.0.7:8983", nil), reason: ReasonMalformed},
		{name: "no port", node: node("/live_nodes/10.0.0.7_solr", nil), reason: ReasonMalformed},
	})
}

// hbaseData builds what HBase writes: 0xFF, id length, id, PBUF, protobuf.
func hbaseData(id string, pb []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(0xFF)
	binary.Write(&b, binary.BigEndian, uint32(len(id)))
	b.WriteString(id)
	b.WriteString("PBUF")
	b.Write(pb)
	return b.Bytes()
}

func TestHBase(t *testing.T) {
	// RegionServerInfo{infoPort: 16030, version_info: {...}}: field 1
	// varint 16030 = 0x9e 0x7d, then field 2 length-delimited.
	rs := hbaseData("regionserver:16020", []byte{0x08, 0x9e, 0x7d, 0x12, 0x03, 0x0a, 0x01, 0x32})
	// Master{master: ServerName{host_name "hm1", port 16000, start_code 17}, rpc_version 0, info_port 16010}
	sn := []byte{0x0a, 0x03, 'h', 'm', '1', 0x10, 0x80, 0x7d, 0x18, 0x11}
	master := hbaseData("master:16000", append(append([]byte{0x0a, byte(len(sn))}, sn...), 0x10, 0x00, 0x18, 0x8a, 0x7d))
	// The same master without its port, and with port -1 (a 10-byte varint).
	snNoPort := []byte{0x0a, 0x03, 'h', 'm', '1', 0x18, 0x11}
	masterNoPort := hbaseData("master:16000", append(append([]byte{0x0a, byte(len(snNoPort))}, snNoPort...), 0x18, 0x8a, 0x7d))
	snMinus := append([]byte{0x0a, 0x03, 'h', 'm', '1', 0x10}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x18, 0x11)
	masterMinus := hbaseData("master:16000", append(append([]byte{0x0a, byte(len(snMinus))}, snMinus...), 0x18, 0x8a, 0x7d))
	rsName := "/hbase/rs/rs1.example.com,16020,1700000000000"
	runCases(t, hbaseFormat{}, []parseCase{
		{name: "region server", node: node(rsName, rs), want: []model.LabelSet{{
			"__address__": "rs1.example.com:16030", "__metrics_path__": "/prometheus",
			"__meta_zookeeper_path": model.LabelValue(rsName), "__meta_zookeeper_format": "hbase",
			"__meta_zookeeper_hbase_role": "regionserver", "__meta_zookeeper_hbase_host": "rs1.example.com",
			"__meta_zookeeper_hbase_rpc_port": "16020", "__meta_zookeeper_hbase_info_port": "16030",
			"__meta_zookeeper_hbase_start_code": "1700000000000", "__meta_zookeeper_hbase_server_name": "rs1.example.com,16020,1700000000000"}}},
		{name: "master", node: node("/hbase/master", master), want: []model.LabelSet{{
			"__address__": "hm1:16010", "__metrics_path__": "/prometheus",
			"__meta_zookeeper_path": "/hbase/master", "__meta_zookeeper_format": "hbase",
			"__meta_zookeeper_hbase_role": "master", "__meta_zookeeper_hbase_host": "hm1",
			"__meta_zookeeper_hbase_rpc_port": "16000", "__meta_zookeeper_hbase_info_port": "16010",
			"__meta_zookeeper_hbase_start_code": "17", "__meta_zookeeper_hbase_server_name": "hm1,16000,17"}}},
		{name: "no prefix, no info port", node: node(rsName, []byte("PBUF")), want: []model.LabelSet{{
			"__address__": "rs1.example.com:16030", "__metrics_path__": "/prometheus",
			"__meta_zookeeper_path": model.LabelValue(rsName), "__meta_zookeeper_format": "hbase",
			"__meta_zookeeper_hbase_role": "regionserver", "__meta_zookeeper_hbase_host": "rs1.example.com",
			"__meta_zookeeper_hbase_rpc_port": "16020", "__meta_zookeeper_hbase_info_port": "16030",
			"__meta_zookeeper_hbase_start_code": "1700000000000", "__meta_zookeeper_hbase_server_name": "rs1.example.com,16020,1700000000000"}}},
		{name: "master without RPC port", node: node("/hbase/master", masterNoPort), reason: ReasonNoAddress},
		{name: "master with RPC port -1", node: node("/hbase/master", masterMinus), reason: ReasonNoAddress},
		{name: "other znode", node: node("/hbase/table/t1", []byte{1})},
		{name: "truncated id", node: node(rsName, []byte{0xFF, 0, 0, 0, 9, 'x'}), reason: ReasonMalformed},
		{name: "truncated varint", node: node(rsName, hbaseData("x", []byte{0x08, 0x9e})), reason: ReasonMalformed},
		{name: "json", node: node(rsName, []byte(`{}`)), reason: ReasonMalformed},
		{name: "bad name", node: node("/hbase/rs/rs1", rs), reason: ReasonMalformed},
	})
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestDruid(t *testing.T) {
	broker := []byte(`{"druidNode":{"service":"druid/broker","host":"druid-broker-0.example.com","bindOnHost":false,"plaintextPort":8082,"port":-1,"tlsPort":-1,"enablePlaintextPort":true,"enableTlsPort":false},"nodeType":"broker","services":{"lookupNodeService":{"type":"lookupNodeService","lookupTier":"__default"}},"startTime":"2023-11-14T22:13:20.000Z"}`)
	tlsOnly := []byte(`{"druidNode":{"service":"druid/router","host":"10.0.0.30","plaintextPort":-1,"tlsPort":9088,"enablePlaintextPort":false,"enableTlsPort":true},"nodeType":"router","services":{}}`)
	want := model.LabelSet{
		"__address__": "druid-broker-0.example.com:8082", "__meta_zookeeper_path": "/druid/internal-discovery/broker/druid-broker-0.example.com:8082",
		"__meta_zookeeper_format": "druid", "__meta_zookeeper_druid_role": "broker", "__meta_zookeeper_druid_node_type": "broker",
		"__meta_zookeeper_druid_service": "druid/broker", "__meta_zookeeper_druid_host": "druid-broker-0.example.com",
		"__meta_zookeeper_druid_plaintext_port": "8082"}
	p := "/druid/internal-discovery/broker/druid-broker-0.example.com:8082"
	runCases(t, druidFormat{}, []parseCase{
		{name: "gzip", node: node(p, gz(broker)), want: []model.LabelSet{want}},
		{name: "plain", node: node(p, broker), want: []model.LabelSet{want}},
		{name: "tls only", node: node("/druid/internal-discovery/router/10.0.0.30:9088", gz(tlsOnly)), want: []model.LabelSet{{
			"__address__": "10.0.0.30:9088", "__scheme__": "https", "__meta_zookeeper_path": "/druid/internal-discovery/router/10.0.0.30:9088",
			"__meta_zookeeper_format": "druid", "__meta_zookeeper_druid_role": "router", "__meta_zookeeper_druid_node_type": "router",
			"__meta_zookeeper_druid_service": "druid/router", "__meta_zookeeper_druid_host": "10.0.0.30",
			"__meta_zookeeper_druid_tls_port": "9088"}}},
		{name: "broken gzip", node: node(p, gz(broker)[:20]), reason: ReasonMalformed},
		{name: "gzip of junk", node: node(p, gz([]byte("junk"))), reason: ReasonMalformed},
		{name: "empty object", node: node(p, []byte(`{}`)), reason: ReasonNoAddress},
	})
}

func TestZkprom(t *testing.T) {
	runCases(t, zkpromFormat{}, []parseCase{
		{name: "group", node: node("/zkprom/targets/api/i-1", []byte(`{"targets":["10.0.0.1:9100","10.0.0.2:9100"],"labels":{"env":"prod","team":"x"}}`)),
			want: []model.LabelSet{
				{"__address__": "10.0.0.1:9100", "env": "prod", "team": "x", "__meta_zookeeper_path": "/zkprom/targets/api/i-1", "__meta_zookeeper_format": "zkprom"},
				{"__address__": "10.0.0.2:9100", "env": "prod", "team": "x", "__meta_zookeeper_path": "/zkprom/targets/api/i-1", "__meta_zookeeper_format": "zkprom"}}},
		{name: "list, no port", node: node("/zkprom/targets/x", []byte(`[{"targets":["db.example.com"]}]`)),
			want: []model.LabelSet{{"__address__": "db.example.com", "__meta_zookeeper_path": "/zkprom/targets/x", "__meta_zookeeper_format": "zkprom"}}},
		{name: "no targets", node: node("/zkprom/targets/x", []byte(`{"labels":{"a":"b"}}`)), reason: ReasonNoAddress},
		{name: "bad label", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"a-b":"c"}}`)), reason: ReasonBadLabel},
		{name: "address label", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"__address__":"c:2"}}`)), reason: ReasonBadLabel},
		// What a registration may not set: Prometheus's own and discovery's.
		{name: "job", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"job":"other"}}`)), reason: ReasonBadLabel},
		{name: "instance", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"instance":"i"}}`)), reason: ReasonBadLabel},
		{name: "scheme", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"__scheme__":"https"}}`)), reason: ReasonBadLabel},
		{name: "metrics path", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"__metrics_path__":"/m"}}`)), reason: ReasonBadLabel},
		{name: "param", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"__param_target":"evil:1"}}`)), reason: ReasonBadLabel},
		{name: "interval", node: node("/zkprom/targets/x", []byte(`{"targets":["h:1"],"labels":{"__scrape_interval__":"1ms"}}`)), reason: ReasonBadLabel},
		{name: "forged serverset meta", node: node("/zkprom/targets/x", []byte(`[{"targets":["h:1"]},{"targets":["h:2"],"labels":{"__meta_serverset_shard":"0"}}]`)), reason: ReasonBadLabel},
		{name: "port 0", node: node("/zkprom/targets/x", []byte(`{"targets":["h:0"]}`)), reason: ReasonNoAddress},
		{name: "null", node: node("/zkprom/targets/x", []byte(`null`)), reason: ReasonNoAddress},
		{name: "junk", node: node("/zkprom/targets/x", []byte{0x1f, 0x8b}), reason: ReasonMalformed},
	})
}

// A generic Curator payload (ServiceDiscoveryBuilder.builder(Map.class)):
// its scalar fields are labels, keys that sanitize to one name give the
// same winner on every parse, and port_field reads them.
func TestCuratorGenericPayload(t *testing.T) {
	data := []byte(`{"name":"orders","id":"i-1","address":"10.0.0.4","port":8080,"sslPort":null,
		"payload":{"team":"payments","metrics.port":9101,"weight":1.5,"canary":true,"nested":{"x":1},"a.b":"dot","a_b":"underscore","a-b":"dash"},
		"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC"}`)
	var first model.LabelSet
	for i := 0; i < 30; i++ {
		ms, err := curatorFormat{}.Parse(node("/services/orders/i-1", data))
		if err != nil || len(ms) != 1 {
			t.Fatalf("parse: %v %v", ms, err)
		}
		l := ms[0].Labels
		if i == 0 {
			first = l
			for k, want := range map[string]string{"team": "payments", "metrics_port": "9101", "weight": "1.5", "canary": "true", "a_b": "dash"} {
				if got := l[model.LabelName("__meta_zookeeper_curator_payload_"+k)]; string(got) != want {
					t.Errorf("payload_%s = %q, want %q", k, got, want)
				}
			}
			if _, ok := l["__meta_zookeeper_curator_payload_nested"]; ok {
				t.Error("a nested payload value became a label")
			}
			r := newRules(JobConfig{Metrics: MetricsConfig{PortField: "metrics.port"}})
			if a := r.address(ms[0]); a != "10.0.0.4:9101" {
				t.Errorf("port_field metrics.port: address %s", a)
			}
		} else if !first.Equal(l) {
			t.Fatalf("parse %d gave other labels: %v vs %v", i, l, first)
		}
	}
}
