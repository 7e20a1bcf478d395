package exporter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Stats are the keys of one server's mntr answer (or of the AdminServer's
// monitor command), without the "zk_" prefix: numeric values in Numbers,
// everything else in Strings.
type Stats struct {
	Numbers map[string]float64
	Strings map[string]string
}

func newStats(n int) Stats {
	return Stats{Numbers: make(map[string]float64, n), Strings: map[string]string{}}
}

// ErrNotServing is ZooKeeper's "This ZooKeeper instance is not currently
// serving requests" (up, but without a quorum).
var ErrNotServing = errors.New("ZooKeeper is not currently serving requests")

// RefusedError is a four-letter word refused by 4lw.commands.whitelist.
type RefusedError struct{ Command string }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s is not in the server's 4lw.commands.whitelist", e.Command)
}

// checkAnswer recognises the answers that are not data: a refusal by the
// whitelist and "not currently serving requests".
func checkAnswer(cmd, text string) error {
	t := strings.TrimSpace(text)
	switch {
	case strings.HasSuffix(t, "is not executed because it is not in the whitelist."):
		return &RefusedError{Command: cmd}
	case strings.Contains(t, "not currently serving requests"):
		return ErrNotServing
	}
	return nil
}

// ParseMntr parses the answer to mntr: "zk_key<TAB>value" lines.
func ParseMntr(text string) (Stats, error) {
	if err := checkAnswer("mntr", text); err != nil {
		return Stats{}, err
	}
	s := newStats(strings.Count(text, "\n") + 1)
	line := 0
	for l := range strings.Lines(text) {
		line++
		l = strings.TrimRight(l, "\r\n")
		if strings.TrimSpace(l) == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "\t")
		if !ok || !strings.HasPrefix(k, "zk_") {
			return Stats{}, fmt.Errorf("parse mntr line %d %q: want zk_<key><TAB><value>", line, l)
		}
		s.add(strings.TrimPrefix(k, "zk_"), strings.TrimSpace(v))
	}
	if len(s.Numbers)+len(s.Strings) == 0 {
		return Stats{}, fmt.Errorf("parse mntr: empty answer")
	}
	return s, nil
}

func (s Stats) add(key, v string) {
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
		s.Numbers[key] = f
		return
	}
	s.Strings[key] = v
}

// ParseMonitor parses the AdminServer's /commands/monitor JSON, which
// carries the keys of mntr without the prefix. The answer is one flat
// object of about 550 members, checked and read in one pass (a syntax
// check first took a sixth of the exporter's own work on it; decoding it
// into a map of raw messages costs twice as much).
func ParseMonitor(body []byte) (Stats, error) {
	o := objectScanner{b: body}
	if !o.open() {
		return Stats{}, monitorSyntaxError(body, "not a JSON object")
	}
	s := newStats(min(bytes.Count(body, []byte{','})+1, 1024)) // a hint, bounded: commas in strings count too
	var errField json.RawMessage
	for o.next() {
		k, raw := o.key, o.value
		switch {
		case k == "error":
			errField = raw
			continue
		case k == "command":
			continue
		}
		// A repeated key: the last one counts, as in encoding/json.
		delete(s.Numbers, k)
		delete(s.Strings, k)
		switch raw[0] {
		case '"':
			if str, ok := jsonString(raw); ok {
				s.Strings[k] = str
			}
		case '{', '[', 'n':
			// Nested values and nulls carry no metric.
		case 't':
			s.Numbers[k] = 1
		case 'f':
			s.Numbers[k] = 0
		default:
			if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
				s.Numbers[k] = f
			}
		}
	}
	if o.bad {
		return Stats{}, monitorSyntaxError(body, "not a JSON object")
	}
	if errField != nil {
		if err := adminError(map[string]json.RawMessage{"error": errField}); err != nil {
			return Stats{}, err
		}
	}
	if len(s.Numbers) == 0 {
		return Stats{}, fmt.Errorf("parse AdminServer monitor: no numeric keys")
	}
	return s, nil
}

// monitorSyntaxError says where and why body is not JSON, as
// encoding/json does (what, if it is JSON but not an object).
func monitorSyntaxError(body []byte, what string) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("parse AdminServer monitor: %w", err)
	}
	return fmt.Errorf("parse AdminServer monitor: %s", what)
}

// objectScanner walks the members of a JSON object, checking the syntax
// as encoding/json would: each next() sets key (decoded) and value (raw,
// trimmed); bad is set when the object is not valid JSON, whole.
type objectScanner struct {
	b     []byte
	i     int
	key   string
	value []byte
	bad   bool
	first bool // no member read yet
}

func (o *objectScanner) skipSpace() {
	for o.i < len(o.b) && (o.b[o.i] == ' ' || o.b[o.i] == '\t' || o.b[o.i] == '\n' || o.b[o.i] == '\r') {
		o.i++
	}
}

func (o *objectScanner) open() bool {
	o.skipSpace()
	if o.i < len(o.b) && o.b[o.i] == '{' {
		o.i++
		o.first = true
		return true
	}
	return false
}

// next reads the next member; at the object's end, or at the first
// syntax error (bad), it returns false.
func (o *objectScanner) next() bool {
	o.skipSpace()
	if o.i < len(o.b) && o.b[o.i] == '}' {
		o.i++
		o.skipSpace()
		o.bad = o.i < len(o.b) // only space may follow
		return false
	}
	if !o.first {
		if o.i >= len(o.b) || o.b[o.i] != ',' {
			o.bad = true
			return false
		}
		o.i++
		o.skipSpace()
	}
	o.first = false
	n, ok := stringLen(o.b[o.i:])
	if !ok {
		o.bad = true
		return false
	}
	o.key, _ = jsonString(o.b[o.i : o.i+n])
	o.i += n
	o.skipSpace()
	if o.i >= len(o.b) || o.b[o.i] != ':' {
		o.bad = true
		return false
	}
	o.i++
	o.skipSpace()
	if n, ok = valueLen(o.b[o.i:]); !ok {
		o.bad = true
		return false
	}
	o.value = o.b[o.i : o.i+n]
	o.i += n
	return true
}

// stringLen is the length of the JSON string at the start of b, quotes
// included, and whether it is one (escapes as JSON has them, no control
// characters; invalid UTF-8 is taken, as encoding/json takes it).
func stringLen(b []byte) (int, bool) {
	if len(b) == 0 || b[0] != '"' {
		return 0, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return 0, false
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// valueLen is the length of the JSON value at the start of b, and
// whether it is one.
func valueLen(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	switch b[0] {
	case '"':
		return stringLen(b)
	case 't', 'f', 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(b, []byte(lit)) {
				return len(lit), true
			}
		}
		return 0, false
	case '{', '[':
		n := nestedLen(b)
		return n, json.Valid(b[:n]) // rare in monitor: checked apart
	}
	return numberLen(b)
}

// nestedLen is the length of the object or array at the start of b if it
// is valid JSON (if not, json.Valid of that much says so).
func nestedLen(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			n, ok := stringLen(b[i:])
			if !ok {
				return i + 1
			}
			i += n - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return len(b)
}

// numberLen is the length of the JSON number at the start of b:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func numberLen(b []byte) (int, bool) {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	return i, true
}

// jsonString decodes a valid JSON string literal; one without escapes is
// taken as it is (invalid UTF-8 replaced, as encoding/json does).
func jsonString(raw []byte) (string, bool) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var str string
	err := json.Unmarshal(raw, &str)
	return str, err == nil
}

// adminError returns the "error" field of an AdminServer answer.
func adminError(m map[string]json.RawMessage) error {
	raw, ok := m["error"]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	var msg string
	if err := json.Unmarshal(raw, &msg); err != nil {
		msg = string(raw)
	}
	if strings.Contains(msg, "not currently serving") || strings.Contains(msg, "not running") {
		return fmt.Errorf("%w (%s)", ErrNotServing, msg)
	}
	return fmt.Errorf("AdminServer error: %s", msg)
}

// ServerStatus is what srvr (or the AdminServer's srvr/stat) says.
type ServerStatus struct {
	Version  string
	Mode     string // leader, follower, observer, standalone, read-only ...
	Zxid     uint64
	HasZxid  bool
	ReadOnly *bool
	// Numbers maps srvr's fields to mntr key names (packets_received,
	// num_alive_connections, znode_count, min/avg/max_latency ...), used
	// when mntr itself is refused.
	Numbers map[string]float64
}

// ParseSrvr parses the answer to the srvr four-letter word.
func ParseSrvr(text string) (ServerStatus, error) {
	if err := checkAnswer("srvr", text); err != nil {
		return ServerStatus{}, err
	}
	st := ServerStatus{Numbers: map[string]float64{}}
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		num := func(key string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("parse srvr %s %q: %w", k, v, err)
			}
			st.Numbers[key] = f
			return nil
		}
		var err error
		switch k {
		case "Zookeeper version":
			st.Version = v
		case "Mode":
			st.Mode = v
		case "Zxid":
			st.Zxid, err = strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
			if err != nil {
				return ServerStatus{}, fmt.Errorf("parse srvr Zxid %q: %w", v, err)
			}
			st.HasZxid = true
		case "Received":
			err = num("packets_received")
		case "Sent":
			err = num("packets_sent")
		case "Connections":
			err = num("num_alive_connections")
		case "Outstanding":
			err = num("outstanding_requests")
		case "Node count":
			err = num("znode_count")
		case "Latency min/avg/max":
			parts := strings.Split(v, "/")
			if len(parts) != 3 {
				return ServerStatus{}, fmt.Errorf("parse srvr latency %q: want min/avg/max", v)
			}
			for i, name := range []string{"min_latency", "avg_latency", "max_latency"} {
				f, perr := strconv.ParseFloat(parts[i], 64)
				if perr != nil {
					return ServerStatus{}, fmt.Errorf("parse srvr latency %q: %w", v, perr)
				}
				st.Numbers[name] = f
			}
		}
		if err != nil {
			return ServerStatus{}, err
		}
	}
	if st.Mode == "" && st.Version == "" {
		return ServerStatus{}, fmt.Errorf("parse srvr: no Mode or version in %q", firstLine(text))
	}
	return st, nil
}

// ParseAdminSrvr parses the AdminServer's /commands/srvr (or stat) JSON.
func ParseAdminSrvr(body []byte) (ServerStatus, error) {
	var v struct {
		Version     string `json:"version"`
		ReadOnly    *bool  `json:"read_only"`
		ServerStats *struct {
			ServerState       string   `json:"server_state"`
			LastProcessedZxid *float64 `json:"last_processed_zxid"`
		} `json:"server_stats"`
		NodeCount *float64        `json:"node_count"`
		Error     json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return ServerStatus{}, fmt.Errorf("parse AdminServer srvr: %w", err)
	}
	if err := adminError(map[string]json.RawMessage{"error": v.Error}); len(v.Error) > 0 && err != nil {
		return ServerStatus{}, err
	}
	st := ServerStatus{Version: v.Version, ReadOnly: v.ReadOnly, Numbers: map[string]float64{}}
	if v.ServerStats != nil {
		st.Mode = v.ServerStats.ServerState
		if z := v.ServerStats.LastProcessedZxid; z != nil {
			st.Zxid, st.HasZxid = uint64(*z), true
		}
	}
	if st.Mode == "" && st.Version == "" {
		return ServerStatus{}, fmt.Errorf("parse AdminServer srvr: no server_state or version")
	}
	return st, nil
}

// ParseVotingView returns the ids of the voting members (participants)
// from the AdminServer's /commands/voting_view.
func ParseVotingView(body []byte) ([]string, error) {
	var v struct {
		CurrentConfig map[string]struct {
			LearnerType string `json:"learner_type"`
		} `json:"current_config"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("parse AdminServer voting_view: %w", err)
	}
	if err := adminError(map[string]json.RawMessage{"error": v.Error}); len(v.Error) > 0 && err != nil {
		return nil, err
	}
	var ids []string
	for id, m := range v.CurrentConfig {
		if m.LearnerType == "" || m.LearnerType == "participant" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Wchs is the answer to wchs.
type Wchs struct{ Connections, Paths, Watches float64 }

// ParseWchs parses "N connections watching M paths\nTotal watches:K".
func ParseWchs(text string) (Wchs, error) {
	if err := checkAnswer("wchs", text); err != nil {
		return Wchs{}, err
	}
	var w Wchs
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) < 2 {
		return Wchs{}, fmt.Errorf("parse wchs: want two lines, got %q", firstLine(text))
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(lines[0]), "%g connections watching %g paths", &w.Connections, &w.Paths); err != nil {
		return Wchs{}, fmt.Errorf("parse wchs %q: %w", lines[0], err)
	}
	_, v, ok := strings.Cut(lines[1], ":")
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if !ok || err != nil {
		return Wchs{}, fmt.Errorf("parse wchs %q: want Total watches:N", lines[1])
	}
	w.Watches = f
	return w, nil
}

// Connection is one client connection from cons.
type Connection struct {
	Client          string // remote host:port
	SessionID       string
	Queued          float64
	PacketsReceived float64
	PacketsSent     float64
	AvgLatency      float64
	MaxLatency      float64
}

// ParseCons parses the answer to cons, one connection per line:
// " /127.0.0.1:37416[1](queued=0,recved=288,sent=288,sid=0x...,...)".
func ParseCons(text string) ([]Connection, error) {
	if err := checkAnswer("cons", text); err != nil {
		return nil, err
	}
	var out []Connection
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		open := strings.IndexByte(l, '(')
		br := strings.IndexByte(l, '[')
		if open < 0 || br < 0 || br > open || !strings.HasSuffix(l, ")") {
			return nil, fmt.Errorf("parse cons line %q: want /host:port[n](k=v,...)", l)
		}
		c := Connection{Client: strings.TrimPrefix(l[:br], "/")}
		for _, kv := range strings.Split(l[open+1:len(l)-1], ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "queued":
				c.Queued = f
			case "recved":
				c.PacketsReceived = f
			case "sent":
				c.PacketsSent = f
			case "sid":
				c.SessionID = v
			case "avglat":
				c.AvgLatency = f
			case "maxlat":
				c.MaxLatency = f
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(l) > 80 {
		l = l[:80] + "..."
	}
	return l
}

// ParseAdminConnections parses the AdminServer's /commands/connections.
func ParseAdminConnections(body []byte) ([]Connection, error) {
	var v struct {
		Connections       []adminConn     `json:"connections"`
		SecureConnections []adminConn     `json:"secure_connections"`
		Error             json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("parse AdminServer connections: %w", err)
	}
	if err := adminError(map[string]json.RawMessage{"error": v.Error}); len(v.Error) > 0 && err != nil {
		return nil, err
	}
	var out []Connection
	for _, c := range append(v.Connections, v.SecureConnections...) {
		out = append(out, Connection{
			Client: strings.TrimPrefix(c.Remote, "/"), SessionID: fmt.Sprintf("0x%x", c.SessionID),
			Queued: c.Outstanding, PacketsReceived: c.Received, PacketsSent: c.Sent,
			AvgLatency: c.AvgLatency, MaxLatency: c.MaxLatency,
		})
	}
	return out, nil
}

type adminConn struct {
	Remote      string  `json:"remote_socket_address"`
	Outstanding float64 `json:"outstanding_requests"`
	Received    float64 `json:"packets_received"`
	Sent        float64 `json:"packets_sent"`
	SessionID   uint64  `json:"session_id"`
	AvgLatency  float64 `json:"avg_latency"`
	MaxLatency  float64 `json:"max_latency"`
}
