package zktest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// Browser is headless Chromium (Debian's chromium package), for tests
// that look at a status page as a person does: the DOM after load.
type Browser struct {
	bin string
	dir string // a fresh profile per page below it
}

// NewBrowser finds chromium. Without it the test is skipped, unless the
// environment variable CI is set: CI must run the browser tests
// (scripts/install-deps.sh installs chromium).
func NewBrowser(tb testing.TB) *Browser {
	tb.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "" {
			tb.Skip("chromium is not installed (scripts/install-deps.sh installs it; with CI set this test fails instead)")
		}
		tb.Fatalf("chromium is not installed and CI is set: run scripts/install-deps.sh: %v", err)
	}
	return &Browser{bin: bin, dir: tb.TempDir()}
}

// Open loads url and returns the DOM once the page has loaded.
func (b *Browser) Open(ctx context.Context, url string) (*Page, error) {
	profile, err := os.MkdirTemp(b.dir, "profile-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The network is closed and tests may run as root: no sandbox, no
	// background traffic, no first-run work.
	cmd := exec.CommandContext(ctx, b.bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--dump-dom", url)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("chromium --dump-dom %s: %w: %s", url, err, lastLines(errOut.String(), 5))
	}
	doc, err := html.Parse(&out)
	if err != nil {
		return nil, fmt.Errorf("parse the DOM of %s: %w", url, err)
	}
	return &Page{URL: url, Doc: doc}, nil
}

// Wait loads url until ok says the page shows what the test waits for,
// and fails the test after timeout with what the page showed last.
func (b *Browser) Wait(tb testing.TB, url string, timeout time.Duration, what string, ok func(*Page) bool) *Page {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := b.Open(context.Background(), url)
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			shown := ""
			if p != nil {
				shown = p.Text()
			}
			tb.Fatalf("%s does not show %s after %v (err %v); it shows:\n%s", url, what, timeout, err, shown)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Page is a loaded page's DOM.
type Page struct {
	URL string
	Doc *html.Node
}

// Text is what a person reads on the page: the body's text, each run of
// white space one blank.
func (p *Page) Text() string {
	return nodeText(find(p.Doc, func(n *html.Node) bool { return isElement(n, "body") }))
}

// ByID returns the element with the id, or nil.
func (p *Page) ByID(id string) *html.Node {
	return find(p.Doc, func(n *html.Node) bool { return n.Type == html.ElementNode && attr(n, "id") == id })
}

// TextOf is the text of the element with the id ("" when there is none).
func (p *Page) TextOf(id string) string { return nodeText(p.ByID(id)) }

// Elements returns every element named tag, in document order.
func (p *Page) Elements(tag string) []*html.Node {
	var out []*html.Node
	walk(p.Doc, func(n *html.Node) {
		if isElement(n, tag) {
			out = append(out, n)
		}
	})
	return out
}

// Rows returns the cells' text of every row of the table with the id
// (header rows included).
func (p *Page) Rows(id string) [][]string {
	var rows [][]string
	walk(p.ByID(id), func(n *html.Node) {
		if !isElement(n, "tr") {
			return
		}
		var row []string
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if isElement(c, "td") || isElement(c, "th") {
				row = append(row, nodeText(c))
			}
		}
		rows = append(rows, row)
	})
	return rows
}

// Row returns the first row of the table with the id whose first cell
// is first, or nil.
func (p *Page) Row(id, first string) []string {
	for _, r := range p.Rows(id) {
		if len(r) > 0 && r[0] == first {
			return r
		}
	}
	return nil
}

// Cell is the cell under the header named header in the first row of
// the table with the id whose first cell is first ("" when there is none).
func (p *Page) Cell(id, first, header string) string {
	rows := p.Rows(id)
	if len(rows) == 0 {
		return ""
	}
	for col, h := range rows[0] {
		if h != header {
			continue
		}
		for _, r := range rows[1:] {
			if len(r) > col && r[0] == first {
				return r[col]
			}
		}
	}
	return ""
}

func isElement(n *html.Node, tag string) bool { return n.Type == html.ElementNode && n.Data == tag }

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func walk(n *html.Node, fn func(*html.Node)) {
	if n == nil {
		return
	}
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	var found *html.Node
	walk(n, func(c *html.Node) {
		if found == nil && match(c) {
			found = c
		}
	})
	return found
}

// nodeText is the text below n without scripts and styles, white space
// folded.
func nodeText(n *html.Node) string {
	var b strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n == nil || isElement(n, "script") || isElement(n, "style") {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return strings.Join(strings.Fields(b.String()), " ")
}
