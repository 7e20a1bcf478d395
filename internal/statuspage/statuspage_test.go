package statuspage

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServeEscapesAndHasJSONTwin(t *testing.T) {
	tmpl := MustParse(`{{define "content"}}<p id="v">{{.Value}}</p>{{end}}`, nil)
	data := struct{ Value string }{`<script>alert(1)</script>`}
	page := Page{Name: "zkprom test", Links: []Link{{Address: "/metrics", Text: "Metrics"}}}

	rec := httptest.NewRecorder()
	tmpl.Serve(rec, httptest.NewRequest("GET", "/x?a=1", nil), page, data)
	body := rec.Body.String()
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the value is not escaped:\n%s", body)
	}
	if !strings.Contains(body, `href="/x?a=1&amp;format=json"`) {
		t.Errorf("no link to the JSON twin:\n%s", body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}

	rec = httptest.NewRecorder()
	tmpl.Serve(rec, httptest.NewRequest("GET", "/x?format=json", nil), page, data)
	var got struct{ Value string }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got != data {
		t.Errorf("JSON twin %q: %v", rec.Body, err)
	}
}

func TestParseNeedsContent(t *testing.T) {
	if _, err := Parse(`{{define "other"}}{{end}}`, nil); err == nil {
		t.Error("a template without content parsed")
	}
}
