package bundle

import (
	"regexp"
	"sort"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Masked replaces a secret value in printed configuration.
const Masked = "<secret>"

var (
	// key: value (YAML) or "key": "value" (JSON).
	secretLineRE = regexp.MustCompile(`(?i)^(\s*(?:-\s+)?"?)([a-z0-9_]+)("?\s*:\s*)(.+?)(\s*,?\s*)$`)
	jsonPairRE   = regexp.MustCompile(`"([A-Za-z0-9_]+)"(\s*:\s*)"((?:[^"\\]|\\.)*)"`)
	userinfoRE   = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@/\s]+)@`)
)

// IsSecretKey reports whether a configuration key holds a secret value
// (keys ending in _file hold a path, which is shown).
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_ref") {
		return false
	}
	for _, s := range []string{"password", "secret", "token", "credentials", "api_key", "apikey", "access_key", "private_key", "authorization"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// MaskSecrets masks the values of secret keys (password, bearer_token,
// credentials, *secret*, *token*, ...) and passwords in URLs. YAML is read
// as YAML first, so that every style hides its secrets (flow mappings,
// block scalars, values on the next line); then line by line, for text
// that is not YAML (JSON, error messages).
func MaskSecrets(text string) string {
	for _, v := range yamlSecretValues(text) {
		text = maskValue(text, v)
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if m := secretLineRE.FindStringSubmatch(l); m != nil && IsSecretKey(m[2]) {
			v := strings.TrimSpace(m[4])
			if v != "" && v != "|" && v != ">" && v != Masked {
				l = m[1] + m[2] + m[3] + Masked + m[5]
			}
		}
		l = jsonPairRE.ReplaceAllStringFunc(l, func(m string) string {
			p := jsonPairRE.FindStringSubmatch(m)
			if !IsSecretKey(p[1]) {
				return m
			}
			return `"` + p[1] + `"` + p[2] + `"` + Masked + `"`
		})
		lines[i] = userinfoRE.ReplaceAllString(l, "${1}"+Masked+"@")
	}
	return strings.Join(lines, "\n")
}

// yamlSecretValues returns the scalar values under secret keys of text
// read as YAML (nothing when it is not YAML), longest first.
func yamlSecretValues(text string) []string {
	var root yaml.Node
	if yaml.Unmarshal([]byte(text), &root) != nil {
		return nil
	}
	var out []string
	var collect func(n *yaml.Node)
	collect = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			for _, line := range strings.Split(n.Value, "\n") {
				if line = strings.TrimSpace(line); line != "" && line != Masked {
					out = append(out, line)
				}
			}
			return
		}
		for _, c := range n.Content {
			collect(c)
		}
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if IsSecretKey(n.Content[i].Value) {
					collect(n.Content[i+1])
				} else {
					walk(n.Content[i+1])
				}
			}
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// maskValue replaces v wherever it stands as a whole YAML value: between
// delimiters, bare or quoted.
func maskValue(text, v string) string {
	re := regexp.MustCompile(`(^|[\s:,{\[]|^-)(["']?)` + regexp.QuoteMeta(v) + `(["']?)($|[\s,}\]#])`)
	for {
		masked := re.ReplaceAllString(text, "${1}${2}"+Masked+"${3}${4}")
		if masked == text {
			return masked
		}
		text = masked // adjacent matches share a delimiter: go again
	}
}

// CleanText makes a text from a znode or for one fit to print on a
// terminal: secrets masked, invalid UTF-8 and control characters other
// than newline and tab dropped (no escape sequences), length bounded.
func CleanText(s string) string {
	s = MaskSecrets(strings.ToValidUTF8(s, ""))
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
	const max = 8 << 10
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + " …(cut)"
	}
	return s
}
