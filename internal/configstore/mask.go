package configstore

import (
	"regexp"
	"strings"
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
// credentials, *secret*, *token*, ...) and passwords in URLs, line by line.
func MaskSecrets(text string) string {
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
