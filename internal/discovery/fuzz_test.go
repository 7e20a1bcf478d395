package discovery

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/targetgroup"
)

// fuzzFormat checks that a parser never panics and never yields a target
// without a usable address or with labels Prometheus would reject.
func fuzzFormat(f *testing.F, format Format, parent string, seeds ...[2]string) {
	for _, s := range seeds {
		f.Add(s[0], []byte(s[1]))
	}
	f.Add("x", []byte(nil))
	f.Add("x", []byte("{}"))
	f.Add("x", []byte("null"))
	f.Add("x", []byte{0xff, 0x1f, 0x8b, 0})
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		if strings.Contains(name, "/") || name == "" {
			return
		}
		n := Node{Path: "/root/" + parent + "/" + name, Name: name, Parent: parent, Data: data}
		ms, err := format.Parse(n)
		if err != nil {
			if len(ms) != 0 {
				t.Fatalf("members and an error: %v %v", ms, err)
			}
			if _, ok := err.(*InvalidError); !ok {
				t.Fatalf("error is not an *InvalidError: %v", err)
			}
			return
		}
		r := newRules(JobConfig{})
		for _, m := range ms {
			l, err := r.target(m)
			if err != nil {
				continue
			}
			a := string(l[model.AddressLabel])
			if a == "" || strings.HasSuffix(a, ":0") || strings.HasPrefix(a, ":") {
				t.Fatalf("broken address %q from %q", a, data)
			}
			for k, v := range l {
				if !k.IsValidLegacy() || !v.IsValid() {
					t.Fatalf("invalid label %q=%q", k, v)
				}
			}
		}
	})
}

func FuzzServerset(f *testing.F) {
	fuzzFormat(f, serversetFormat{}, "web",
		[2]string{"member_0000000001", `{"serviceEndpoint":{"host":"10.0.0.1","port":31000},"additionalEndpoints":{"http":{"host":"10.0.0.1","port":31001}},"status":"ALIVE","shard":3}`})
}

func FuzzNerve(f *testing.F) {
	fuzzFormat(f, nerveFormat{}, "services", [2]string{"i-1_0000000001", `{"host":"10.1.2.3","port":8080,"name":"i-1"}`})
}

func FuzzCurator(f *testing.F) {
	fuzzFormat(f, curatorFormat{}, "orders",
		[2]string{"b5e4", `{"name":"orders","id":"b5e4","address":"10.0.0.5","port":8080,"sslPort":null,"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","metadata":{"instance_status":"UP"}},"serviceType":"DYNAMIC"}`},
		[2]string{"d", `{"name":"d","address":"10.0.0.9","port":20880,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"}]"}}}`})
}

func FuzzDubbo(f *testing.F) {
	fuzzFormat(f, dubboFormat{}, "providers",
		[2]string{url.QueryEscape("dubbo://10.0.0.5:20880/org.example.DemoService?application=demo&interface=org.example.DemoService"), ""})
}

func FuzzKafka(f *testing.F) {
	fuzzFormat(f, kafkaFormat{}, "ids",
		[2]string{"1", `{"endpoints":["PLAINTEXT://k1:9092"],"host":"k1","port":9092,"jmx_port":-1,"version":5}`},
		[2]string{"2", `{"endpoints":["INTERNAL://[::1]:9094"],"host":null,"port":-1}`})
}

func FuzzSolr(f *testing.F) {
	fuzzFormat(f, solrFormat{}, "live_nodes", [2]string{"10.0.0.7:8983_solr", ""}, [2]string{"[::1]:8983_solr", ""})
}

func FuzzHBase(f *testing.F) {
	fuzzFormat(f, hbaseFormat{}, "rs",
		[2]string{"rs1,16020,1700000000000", string(hbaseData("regionserver:16020", []byte{0x08, 0x9e, 0x7d}))},
		[2]string{"rs1,16020,1", "PBUF\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"})
}

func FuzzDruid(f *testing.F) {
	fuzzFormat(f, druidFormat{}, "broker",
		[2]string{"h:8082", string(gz([]byte(`{"druidNode":{"service":"druid/broker","host":"h","plaintextPort":8082,"tlsPort":-1},"nodeType":"broker"}`)))})
}

func FuzzZkprom(f *testing.F) {
	fuzzFormat(f, zkpromFormat{}, "api", [2]string{"i-1", `{"targets":["10.0.0.1:9100"],"labels":{"env":"prod"}}`})
}

// FuzzRender: render writes exactly what json.Marshal makes of the
// target's targetgroup.Group, whatever the labels hold.
func FuzzRender(f *testing.F) {
	f.Add("127.0.0.1:80", "__meta_x", "plain", "team", "a<b>&c\"d\\e")
	f.Add("", "a", "\x00\x1f\b\f\n\r\t\x7f", "b", "\xff\xfe\u2028\u2029é")
	f.Add("h:1", "__address__", "other", "", "")
	f.Fuzz(func(t *testing.T, addr, k1, v1, k2, v2 string) {
		l := model.LabelSet{model.AddressLabel: model.LabelValue(addr), model.LabelName(k1): model.LabelValue(v1), model.LabelName(k2): model.LabelValue(v2)}
		e := targetgroup.Group{Targets: []string{string(l[model.AddressLabel])}, Labels: map[string]string{}}
		for k, v := range l {
			if k != model.AddressLabel {
				e.Labels[string(k)] = string(v)
			}
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got := render(l)
		if !bytes.Equal(got, want) {
			t.Fatalf("render = %s, json.Marshal = %s", got, want)
		}
		// Without escapes, the entry's allocation is its size: entries
		// are held for as long as their targets live.
		plain := true
		for k, v := range l {
			for _, s := range []string{string(k), string(v)} {
				plain = plain && string(appendJSONString(nil, s)) == `"`+s+`"`
			}
		}
		if plain && cap(got) != len(got) {
			t.Fatalf("render allocated %d bytes for %d", cap(got), len(got))
		}
	})
}
