package bundle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBundleRoundTrip(t *testing.T) {
	b := &Bundle{Files: map[string][]byte{
		"prometheus.yml":    []byte("global: {}\n"),
		"rules/a.yml":       []byte("groups: []\n"),
		"certs/ca.pem":      []byte("x"),
		"deep/er/file.json": []byte("{}"),
	}}
	e1, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := b.Encode()
	if string(e1) != string(e2) {
		t.Error("encoding is not deterministic")
	}
	d, err := Decode(e1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Checksum() != b.Checksum() || len(d.Files) != 4 {
		t.Errorf("round trip changed the bundle")
	}
	c := &Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n"), "rules/a.yml": []byte("groups: [ ]\n")}}
	if c.Checksum() == b.Checksum() {
		t.Error("different bundles, same checksum")
	}
}

func TestBundleBadInput(t *testing.T) {
	for name, b := range map[string]*Bundle{
		"no prometheus.yml": {Files: map[string][]byte{"rules.yml": nil}},
		"absolute path":     {Files: map[string][]byte{"prometheus.yml": nil, "/etc/x": nil}},
		"dot-dot":           {Files: map[string][]byte{"prometheus.yml": nil, "../x": nil}},
		"hidden":            {Files: map[string][]byte{"prometheus.yml": nil, "a/.x": nil}},
		"unclean":           {Files: map[string][]byte{"prometheus.yml": nil, "a//x": nil}},
	} {
		if err := b.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Decode([]byte("not gzip")); err == nil {
		t.Error("garbage decoded")
	}
	dir := t.TempDir()
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "prometheus.yml") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("{}"), 0o644)
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("x"), 0o644)
	b, err := LoadDir(dir)
	if err != nil || len(b.Files) != 1 {
		t.Errorf("LoadDir: %v %v (hidden files must be left out)", b, err)
	}
}

func TestRender(t *testing.T) {
	b := &Bundle{Files: map[string][]byte{"prometheus.yml": []byte(
		"replica: ${ZKPROM_MEMBER}\nc: ${ZKPROM_CLUSTER}\nd: ${ZKPROM_CONFIG_DIR}/x ${ZKPROM_REVISION_DIR} r${ZKPROM_REVISION}\nkeep: ${1} $1 ${HOME}\n")}}
	r, err := b.Render(Vars{Member: "m1", Cluster: "c1", ConfigDir: "/cfg", RevisionDir: "/cfg/revisions/r-7", Revision: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := "replica: m1\nc: c1\nd: /cfg/x /cfg/revisions/r-7 r7\nkeep: ${1} $1 ${HOME}\n"
	if got := string(r.Files["prometheus.yml"]); got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
	b.Files["prometheus.yml"] = []byte("x: ${ZKPROM_NOPE}")
	if _, err := b.Render(Vars{}); err == nil || !strings.Contains(err.Error(), "unknown placeholder ${ZKPROM_NOPE}") {
		t.Errorf("unknown placeholder: %v", err)
	}
}

func TestMaskSecrets(t *testing.T) {
	in := `basic_auth:
  username: u
  password: hunter2
  password_file: /etc/pw
bearer_token: abc
authorization:
  credentials: "xyz"
oauth2:
  client_secret: s
  client_secret_file: /f
url: http://user:pa55@host:9090/x
{"password":"j1","user":"u"}
- password: listed
`
	out := MaskSecrets(in)
	for _, secret := range []string{"hunter2", "abc", "xyz", "client_secret: s", "pa55", "j1", "listed"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q not masked:\n%s", secret, out)
		}
	}
	for _, keep := range []string{"username: u", "password_file: /etc/pw", "client_secret_file: /f", "http://user:<secret>@host:9090/x"} {
		if !strings.Contains(out, keep) {
			t.Errorf("%q lost:\n%s", keep, out)
		}
	}
}

// Every YAML style hides its secrets.
func TestMaskSecretsYAMLStyles(t *testing.T) {
	in := `scrape_configs:
  - job_name: a
    basic_auth: {username: bob, password: SUPERSECRETPW1}
  - job_name: b
    basic_auth:
      password: |
        BLOCKSECRET2
  - job_name: c
    basic_auth:
      password:
        NEXTLINESECRET3
  - job_name: d
    authorization: {credentials: 'QUOTEDSECRET4'}
  - {job_name: e, bearer_token: "FLOWSECRET5"}
    # the job name stays: bob
`
	out := MaskSecrets(in)
	for _, secret := range []string{"SUPERSECRETPW1", "BLOCKSECRET2", "NEXTLINESECRET3", "QUOTEDSECRET4", "FLOWSECRET5"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q not masked:\n%s", secret, out)
		}
	}
	for _, keep := range []string{"username: bob", "job_name: a", "job_name: e", "# the job name stays: bob"} {
		if !strings.Contains(out, keep) {
			t.Errorf("%q lost:\n%s", keep, out)
		}
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := &Bundle{Files: map[string][]byte{"prometheus.yml": []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"), "old.yml": []byte("x\n")}}
	b := &Bundle{Files: map[string][]byte{"prometheus.yml": []byte("a\nb\nC\nd\ne\nf\ng\nh\ni\nj\nk\n"), "new.yml": []byte("password: p\n")}}
	d := UnifiedDiff(a, b, "r1", "r2", false)
	for _, want := range []string{
		"--- r1/prometheus.yml\n+++ r2/prometheus.yml\n@@ -1,6 +1,6 @@\n a\n b\n-c\n+C\n d\n e\n f\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n",
		"--- /dev/null\n+++ r2/new.yml\n@@ -0,0 +1,1 @@\n+password: <secret>\n",
		"--- r1/old.yml\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-x\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks\n%s\ngot:\n%s", want, d)
		}
	}
	if d := UnifiedDiff(a, a, "r1", "r1", false); d != "" {
		t.Errorf("diff of equal bundles: %q", d)
	}
}

func TestBuiltinValidation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // "" = valid
	}{
		{"ok", map[string]string{"prometheus.yml": "rule_files: [rules/*.yml]\nscrape_configs:\n  - job_name: a\n", "rules/a.yml": "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n"}, ""},
		{"bad yaml", map[string]string{"prometheus.yml": "scrape_configs: [\n"}, "parse prometheus.yml"},
		{"unknown field", map[string]string{"prometheus.yml": "scrape_config: []\n"}, "field scrape_config not found"},
		{"duplicate job", map[string]string{"prometheus.yml": "scrape_configs:\n  - job_name: a\n  - job_name: a\n"}, "multiple scrape configs"},
		{"missing rule file", map[string]string{"prometheus.yml": "rule_files: [rules.yml]\n"}, "does not point to an existing file"},
		{"missing password file", map[string]string{"prometheus.yml": "scrape_configs:\n  - job_name: a\n    basic_auth:\n      password_file: pw\n"}, "password_file \"pw\" does not point"},
		{"rule without expr", map[string]string{"prometheus.yml": "rule_files: [r.yml]\n", "r.yml": "groups:\n  - name: g\n    rules:\n      - record: r\n"}, "'expr' must be set"},
		{"rule with both", map[string]string{"prometheus.yml": "rule_files: [r.yml]\n", "r.yml": "groups:\n  - name: g\n    rules:\n      - record: r\n        alert: a\n        expr: up\n"}, "one of 'record' or 'alert'"},
		{"unknown placeholder", map[string]string{"prometheus.yml": "x: ${ZKPROM_X}\n"}, "unknown placeholder"},
	} {
		b := &Bundle{Files: map[string][]byte{}}
		for k, v := range tc.files {
			b.Files[k] = []byte(v)
		}
		v, err := Validate(ctx, b, ValidateOptions{Promtool: "none"})
		var ve *ValidationError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && !strings.Contains(v.Note, "PromQL"):
			t.Errorf("%s: note %q does not say what was not checked", tc.name, v.Note)
		case tc.want != "" && (!errors.As(err, &ve) || !strings.Contains(ve.Output, tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// A promtool that does not exist: built-in checks, and the note says so.
	b := &Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n")}}
	v, err := Validate(ctx, b, ValidateOptions{Promtool: "/nonexistent/promtool"})
	if err != nil || v.Method != "builtin" || !strings.Contains(v.Note, "promtool was not found") {
		t.Errorf("without promtool: %+v %v", v, err)
	}
}

func TestPromtoolValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	ctx := context.Background()
	b := &Bundle{Files: map[string][]byte{
		"prometheus.yml": []byte("rule_files: [rules/a.yml]\n"),
		"rules/a.yml":    []byte("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(up\n"),
	}}
	_, err := Validate(ctx, b, ValidateOptions{})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Method != "promtool" || !strings.Contains(ve.Output, "parse error") || strings.Contains(ve.Output, os.TempDir()+"/zkprom-validate") {
		t.Errorf("bad PromQL: %v", err)
	}
	b.Files["rules/a.yml"] = []byte("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(up)\n")
	if v, err := Validate(ctx, b, ValidateOptions{}); err != nil || v.Method != "promtool" {
		t.Errorf("good bundle: %+v %v", v, err)
	}
}

// The example bundle in deploy/config is valid.
func TestDeployExample(t *testing.T) {
	b, err := LoadDir("../../deploy/config/bundle")
	if err != nil {
		t.Fatal(err)
	}
	promtool := "none"
	if !testing.Short() {
		promtool = ""
	}
	if _, err := Validate(context.Background(), b, ValidateOptions{Promtool: promtool, Vars: Vars{Cluster: "demo"}}); err != nil {
		t.Fatal(err)
	}
}

// The example bad bundle is refused with promtool's text.
func TestDeployBadExample(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	b, err := LoadDir("../../deploy/config/bad-bundle")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Validate(context.Background(), b, ValidateOptions{})
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Output, "parse error") {
		t.Fatalf("bad example: %v", err)
	}
	t.Log(ve.Output)
}

// CleanText: secrets masked, no control characters or invalid UTF-8 left,
// newlines and tabs kept, the length bounded.
func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"password: hunter2\n\tnext", "password: " + Masked + "\n\tnext"},
		{"red \x1b[31mtext\x1b[0m \a", "red [31mtext[0m "},
		{"\u202eevil\u2066", "evil"},
		{"bad \xff\xfe utf8 \u009b2J", "bad  utf8 2J"},
	} {
		if got := CleanText(tc.in); got != tc.want {
			t.Errorf("CleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := CleanText(strings.Repeat("é", 10_000))
	if len(long) > 8<<10+20 || !strings.HasSuffix(long, "…(cut)") || !utf8.ValidString(long) {
		t.Errorf("long text: %d bytes, suffix %q", len(long), long[len(long)-12:])
	}
}
