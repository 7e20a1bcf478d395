// Package statuspage is the one look of zkprom's listeners: a landing
// page per listener that says what the process sees, rendered on the
// server from html/template (which escapes everything: znode data and
// labels come from anyone who may write to ZooKeeper), plain HTML and
// CSS, refreshed by a meta refresh, readable without JavaScript. Every
// page has a JSON twin for scripts: the same data, at the same path
// with ?format=json.
package statuspage

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/version"
)

var (
	//go:embed layout.html
	layoutHTML string
	//go:embed style.css
	styleCSS string
)

// FormatParam and FormatJSON are the one rule for a page's JSON twin:
// the same path with ?format=json.
const (
	FormatParam = "format"
	FormatJSON  = "json"
)

// Link is a link in a page's navigation bar.
type Link struct {
	Address     string
	Text        string
	Description string
}

// Page is the frame of one page: what every listener's pages share.
type Page struct {
	Name        string // the listener: "zkprom exporter"
	Title       string // this page ("" is Name)
	Description string
	Links       []Link
	// Refresh is how often the browser loads the page again (0: never).
	Refresh time.Duration
}

// Template is a parsed page: the shared layout around a part's
// "content" template.
type Template struct{ t *template.Template }

// Parse parses content, which must define the template "content"; it is
// executed with the page's data. funcs adds to the shared functions.
func Parse(content string, funcs template.FuncMap) (*Template, error) {
	t := template.New("layout").Funcs(sharedFuncs())
	if funcs != nil {
		t = t.Funcs(funcs)
	}
	if _, err := t.Parse(layoutHTML); err != nil {
		return nil, fmt.Errorf("status page layout: %w", err)
	}
	if _, err := t.Parse(content); err != nil {
		return nil, fmt.Errorf("status page template: %w", err)
	}
	if t.Lookup("content") == nil {
		return nil, fmt.Errorf("status page template: no {{define \"content\"}}")
	}
	return &Template{t: t}, nil
}

// MustParse is Parse for templates embedded in the binary: an error is a
// programming error.
func MustParse(content string, funcs template.FuncMap) *Template {
	t, err := Parse(content, funcs)
	if err != nil {
		panic(err)
	}
	return t
}

// frame is what the layout is executed with.
type frame struct {
	Page
	Refresh int // seconds
	CSS     template.CSS
	JSON    string
	Version string
	Now     time.Time
	Data    any
}

// wantsJSON says whether r asks for a page's JSON twin.
func wantsJSON(r *http.Request) bool { return r.URL.Query().Get(FormatParam) == FormatJSON }

// jsonURL is the address of the JSON twin of the page at u.
func jsonURL(u *url.URL) string {
	q := u.Query()
	q.Set(FormatParam, FormatJSON)
	return (&url.URL{Path: u.Path, RawQuery: q.Encode()}).String()
}

// Serve answers r with data: as JSON when r asks for the twin, else as
// the page p rendered by t. The page is rendered whole before it is
// sent, so that a template error is an HTTP 500, not half a page.
func (t *Template) Serve(w http.ResponseWriter, r *http.Request, p Page, data any) {
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		serveJSON(w, data)
		return
	}
	if p.Title == "" {
		p.Title = p.Name
	}
	f := frame{Page: p, Refresh: int(p.Refresh / time.Second), CSS: template.CSS(styleCSS), JSON: jsonURL(r.URL),
		Version: versionLine(), Now: time.Now().UTC(), Data: data}
	var buf bytes.Buffer
	if err := t.t.ExecuteTemplate(&buf, "layout", f); err != nil {
		http.Error(w, "render the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// serveJSON writes data as indented JSON.
func serveJSON(w http.ResponseWriter, data any) {
	body, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		http.Error(w, "encode the status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

// versionLine names the build of this binary.
func versionLine() string {
	if version.Version == "" {
		return "version unknown (not built by make)"
	}
	r := version.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	return "version " + version.Version + " (revision " + r + ")"
}

// sharedFuncs are the functions every page's template may use.
func sharedFuncs() template.FuncMap {
	return template.FuncMap{
		"ago":   ago,
		"when":  when,
		"join":  strings.Join,
		"yesno": func(b bool) string { return map[bool]string{true: "yes", false: "no"}[b] },
		// okbad is the CSS class of a fact that is good when b.
		"okbad": func(b bool) string { return map[bool]string{true: "ok", false: "bad"}[b] },
	}
}

// ago says how long before now t was, to the second ("-" for no time).
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// when is t in UTC with how long ago ("-" for no time).
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339) + " (" + ago(t) + ")"
}
