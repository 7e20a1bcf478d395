package wire

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// DefaultDigestURI is the digest-uri ZooKeeper's server expects of
// DIGEST-MD5 (its service "zookeeper" and its fixed server name
// "zk-sasl-md5"), whatever host is dialed.
const DefaultDigestURI = "zookeeper/zk-sasl-md5"

// DigestMD5 is the SASL DIGEST-MD5 mechanism (RFC 2831) with quality of
// protection "auth" (authentication only: ZooKeeper wraps nothing), the
// mechanism a server uses with the DigestLoginModule of its JAAS file
// (user_<name>="<password>"). The session's identity is then sasl:<name>.
type DigestMD5 struct {
	Username string
	Password string
	// DigestURI is the digest-uri sent; "" means DefaultDigestURI.
	DigestURI string
	// cnonce makes the client nonce (nil: 16 random bytes); for tests.
	cnonce func() (string, error)
}

func (m *DigestMD5) Name() string { return "DIGEST-MD5" }

// Start begins one exchange: the client speaks first with an empty token.
func (m *DigestMD5) Start(string) (SASLExchange, error) {
	if m.Username == "" {
		return nil, errors.New("DIGEST-MD5: no user name")
	}
	return &digestExchange{m: m}, nil
}

type digestExchange struct {
	m       *DigestMD5
	step    int
	rspauth string // the server's proof expected at the last step
}

func (x *digestExchange) Step(challenge []byte) ([]byte, bool, error) {
	x.step++
	switch x.step {
	case 1:
		return []byte{}, false, nil
	case 2:
		if len(challenge) == 0 {
			return nil, false, errors.New("DIGEST-MD5: the server sent no challenge (is SASL configured on the server: a Server section in its JAAS file?)")
		}
		return x.respond(challenge)
	case 3:
		kv, err := parseDigestChallenge(challenge)
		if err != nil {
			return nil, false, fmt.Errorf("DIGEST-MD5: the server's last token: %w", err)
		}
		got := kv["rspauth"]
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(x.rspauth)) != 1 {
			return nil, false, errors.New("DIGEST-MD5: the server did not prove that it knows the password (rspauth)")
		}
		return nil, true, nil
	}
	return nil, false, errors.New("DIGEST-MD5: the server asked for more after the exchange ended")
}

// respond answers the server's digest-challenge (RFC 2831 2.1.2).
func (x *digestExchange) respond(challenge []byte) ([]byte, bool, error) {
	kv, err := parseDigestChallenge(challenge)
	if err != nil {
		return nil, false, fmt.Errorf("DIGEST-MD5: challenge: %w", err)
	}
	one := func(k string) (string, error) {
		switch v := kv[k]; len(v) {
		case 0:
			return "", nil
		case 1:
			return v[0], nil
		}
		return "", fmt.Errorf("DIGEST-MD5: challenge: %s given more than once", k)
	}
	nonce, err := one("nonce")
	if err != nil {
		return nil, false, err
	}
	if nonce == "" {
		return nil, false, errors.New("DIGEST-MD5: challenge without a nonce")
	}
	if alg, err := one("algorithm"); err != nil || alg != "md5-sess" {
		return nil, false, fmt.Errorf("DIGEST-MD5: challenge: algorithm %q, want md5-sess", alg)
	}
	if qop, err := one("qop"); err != nil {
		return nil, false, err
	} else if qop != "" && !hasToken(qop, "auth") {
		return nil, false, fmt.Errorf("DIGEST-MD5: the server offers qop %q, this client only auth", qop)
	}
	charset, err := one("charset")
	if err != nil {
		return nil, false, err
	}
	utf8 := strings.EqualFold(charset, "utf-8")
	// The first realm offered (the server's name), or none.
	realm := ""
	if r := kv["realm"]; len(r) > 0 {
		realm = r[0]
	}
	user, pass, realmEnc := x.m.Username, x.m.Password, realm
	if !utf8 {
		// Without charset=utf-8 the values are ISO 8859-1.
		var ok1, ok2, ok3 bool
		user, ok1 = latin1(user)
		pass, ok2 = latin1(pass)
		realmEnc, ok3 = latin1(realm)
		if !ok1 || !ok2 || !ok3 {
			return nil, false, errors.New("DIGEST-MD5: the user name or password is not ISO 8859-1 and the server does not accept UTF-8")
		}
	}
	newCnonce := x.m.cnonce
	if newCnonce == nil {
		newCnonce = randomCnonce
	}
	cnonce, err := newCnonce()
	if err != nil {
		return nil, false, err
	}
	uri := x.m.DigestURI
	if uri == "" {
		uri = DefaultDigestURI
	}
	const nc = "00000001"
	response, rspauth := digestMD5Responses(user, realmEnc, pass, nonce, cnonce, nc, uri)
	x.rspauth = rspauth

	var b strings.Builder
	if utf8 {
		b.WriteString("charset=utf-8,")
	}
	fmt.Fprintf(&b, "username=%s,", quoteDigest(x.m.Username))
	if realm != "" {
		fmt.Fprintf(&b, "realm=%s,", quoteDigest(realm))
	}
	fmt.Fprintf(&b, "nonce=%s,nc=%s,cnonce=%s,digest-uri=%s,response=%s,qop=auth",
		quoteDigest(nonce), nc, quoteDigest(cnonce), quoteDigest(uri), response)
	return []byte(b.String()), false, nil
}

// digestMD5Responses computes the response-value the client sends and the
// rspauth the server must answer with (RFC 2831 2.1.2.1, 2.1.3), qop auth,
// no authzid.
func digestMD5Responses(user, realm, pass, nonce, cnonce, nc, uri string) (response, rspauth string) {
	h := md5.Sum([]byte(user + ":" + realm + ":" + pass))
	a1 := md5.Sum(append(h[:], ":"+nonce+":"+cnonce...))
	ha1 := hex.EncodeToString(a1[:])
	kd := func(a2 string) string {
		ha2 := md5.Sum([]byte(a2))
		s := md5.Sum([]byte(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + hex.EncodeToString(ha2[:])))
		return hex.EncodeToString(s[:])
	}
	return kd("AUTHENTICATE:" + uri), kd(":" + uri)
}

func randomCnonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("DIGEST-MD5: cnonce: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(b[:]), nil
}

// parseDigestChallenge parses a digest-challenge or response-auth: a
// comma-separated list of key=value, values quoted or not (RFC 2831 7.1:
// backslash escapes inside quotes, empty elements allowed). Keys are
// lower-cased; a key may repeat (realm).
func parseDigestChallenge(b []byte) (map[string][]string, error) {
	const maxLen = 4096 // a challenge is a few hundred bytes
	if len(b) > maxLen {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), maxLen)
	}
	s := string(b)
	kv := map[string][]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return kv, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("no key=value at %q", s)
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var v strings.Builder
			i, closed := 1, false
			for ; i < len(s); i++ {
				switch s[i] {
				case '\\':
					i++
					if i < len(s) {
						v.WriteByte(s[i])
					}
					continue
				case '"':
					closed = true
				default:
					v.WriteByte(s[i])
					continue
				}
				break
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quote in %s", key)
			}
			val, s = v.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		s = strings.TrimLeft(s, " \t")
		if s != "" && s[0] != ',' {
			return nil, fmt.Errorf("junk after %s", key)
		}
		kv[key] = append(kv[key], val)
	}
}

func quoteDigest(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// hasToken says whether a comma-separated list holds tok.
func hasToken(list, tok string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// latin1 turns s into ISO 8859-1 bytes (false when it has other runes).
func latin1(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return "", false
		}
		b = append(b, byte(r))
	}
	return string(b), true
}
