package zk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

func TestSASLConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	pw := write("pw", "# alice\nalice-secret\n")
	creds := write("creds", "alice:alice-secret\n")
	for _, tc := range []struct {
		name string
		cfg  SASLConfig
		user string // "" with want
		want string
	}{
		{"off", SASLConfig{}, "", ""},
		{"user and password file", SASLConfig{User: "alice", PasswordFile: pw}, "alice", ""},
		{"mechanism named", SASLConfig{Mechanism: "digest-md5", User: "alice", PasswordFile: pw}, "alice", ""},
		{"credentials file", SASLConfig{CredentialsFile: creds}, "alice", ""},
		{"GSSAPI", SASLConfig{Mechanism: "GSSAPI", User: "alice", PasswordFile: pw}, "", "not supported"},
		{"no password", SASLConfig{User: "alice"}, "", "password file"},
		{"both", SASLConfig{User: "alice", PasswordFile: pw, CredentialsFile: creds}, "", "not both"},
		{"missing file", SASLConfig{User: "alice", PasswordFile: filepath.Join(dir, "none")}, "", "read ZooKeeper SASL password file"},
		{"empty password", SASLConfig{User: "alice", PasswordFile: write("empty", "\n")}, "", "is empty"},
		{"bad credentials", SASLConfig{CredentialsFile: write("bad", "alice-secret\n")}, "", "want one user:password line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.cfg.mechanism()
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				if strings.Contains(err.Error(), "alice-secret") {
					t.Errorf("error prints the password: %v", err)
				}
				if verr := (Config{Servers: "zk1:2181", SASL: tc.cfg}).Validate(); verr == nil {
					t.Error("Validate accepts it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.user == "" {
				if m != nil {
					t.Errorf("mechanism %v with SASL off", m)
				}
				return
			}
			if m == nil || m.Name() != "DIGEST-MD5" {
				t.Fatalf("mechanism %v", m)
			}
		})
	}
}

// TestSASL runs against a ZooKeeper with SASL DIGEST-MD5 (a server JAAS
// file): a session with the right password is sasl:alice and may use a
// node whose ACL names sasl:alice, which an anonymous session may not; a
// wrong password is refused with a clear error that does not print it.
func TestSASL(t *testing.T) {
	needEnsemble(t)
	e, err := zktest.StartEnsemble(zktest.Options{Servers: 1, SASLUsers: map[string]string{"alice": "alice-secret", "bob": "bob-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := ctxT(t, 60*time.Second)
	dir := t.TempDir()
	pw := filepath.Join(dir, "alice.pw")
	os.WriteFile(pw, []byte("alice-secret\n"), 0o600)
	creds := filepath.Join(dir, "bob.creds")
	os.WriteFile(creds, []byte("bob:bob-secret\n"), 0o600)

	alice := connect(t, Config{Servers: e.Connect(), SASL: SASLConfig{User: "alice", PasswordFile: pw}})
	bob := connect(t, Config{Servers: e.Connect(), SASL: SASLConfig{Mechanism: "DIGEST-MD5", CredentialsFile: creds}})
	anon := connect(t, Config{Servers: e.Connect()})
	if !alice.Authenticated() || anon.Authenticated() {
		t.Errorf("Authenticated: alice %v, anonymous %v", alice.Authenticated(), anon.Authenticated())
	}
	onlyAlice := Grant(PermAll, Identity{Scheme: "sasl", ID: "alice"})
	if _, err := alice.Create(ctx, "/sasl-alice", []byte("a"), Persistent, onlyAlice); err != nil {
		t.Fatal(err)
	}
	if data, _, err := alice.Get(ctx, "/sasl-alice"); err != nil || string(data) != "a" {
		t.Fatalf("alice reads her node: %q %v", data, err)
	}
	for name, c := range map[string]*Client{"anonymous": anon, "bob": bob} {
		_, _, err := c.Get(ctx, "/sasl-alice")
		if !errors.Is(err, ErrNoAuth) {
			t.Errorf("%s reads alice's node: %v, want ErrNoAuth", name, err)
		}
	}
	// The creator's ACL ("auth") names the SASL identity.
	if _, err := bob.Create(ctx, "/sasl-bob", nil, Persistent, ACLCreatorOnly()); err != nil {
		t.Fatal(err)
	}
	acl, _, err := bob.GetACL(ctx, "/sasl-bob")
	if err != nil || FormatACL(acl) != "sasl:bob:cdrwa" {
		t.Errorf("creator-only ACL of a SASL session: %s %v, want sasl:bob:cdrwa", FormatACL(acl), err)
	}

	os.WriteFile(pw, []byte("wrong-password\n"), 0o600)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := Connect(cctx, Config{Servers: e.Connect(), SASL: SASLConfig{User: "alice", PasswordFile: pw}}, testLogger(), nil)
	if err == nil {
		c.Close()
		t.Fatal("a wrong SASL password was accepted")
	}
	if !errors.Is(err, ErrAuthFailed) || !strings.Contains(err.Error(), "refused the credentials") || !strings.Contains(err.Error(), "--zookeeper.sasl") {
		t.Errorf("refused SASL: %v, want ErrAuthFailed with a hint", err)
	}
	if strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), "alice-secret") {
		t.Errorf("refusal prints a password: %v", err)
	}
}
