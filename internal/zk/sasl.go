package zk

import (
	"fmt"
	"os"
	"strings"

	"github.com/zkprom/zkprom/internal/zk/wire"
)

// SASLConfig says how the session authenticates with SASL (ZooKeeper's
// authProvider.sasl). DIGEST-MD5 is the one mechanism; the session's
// identity is then sasl:<user>. The password comes from a file, never
// from the command line.
type SASLConfig struct {
	// Mechanism is "DIGEST-MD5", or "" for no SASL (the default, unless a
	// credentials file is given).
	Mechanism string `yaml:"mechanism,omitempty"`
	// User and PasswordFile (the password is the file's first line) give
	// the credentials...
	User         string `yaml:"user,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	// ...or CredentialsFile holds one user:password line.
	CredentialsFile string `yaml:"credentials_file,omitempty"`
}

// Enabled reports whether SASL is asked for.
func (s SASLConfig) Enabled() bool {
	return s.Mechanism != "" || s.User != "" || s.PasswordFile != "" || s.CredentialsFile != ""
}

// mechanism reads the credentials and builds the mechanism (nil when SASL
// is off). Errors name the files, never their content.
func (s SASLConfig) mechanism() (wire.SASLMechanism, error) {
	if !s.Enabled() {
		return nil, nil
	}
	if m := strings.ToUpper(s.Mechanism); m != "" && m != "DIGEST-MD5" {
		return nil, fmt.Errorf("ZooKeeper SASL mechanism %q is not supported: use DIGEST-MD5 (--zookeeper.sasl.mechanism)", s.Mechanism)
	}
	user, password := s.User, ""
	switch {
	case s.CredentialsFile != "" && (s.User != "" || s.PasswordFile != ""):
		return nil, fmt.Errorf("ZooKeeper SASL: give either a credentials file (--zookeeper.sasl.credentials-file) or a user and a password file, not both")
	case s.CredentialsFile != "":
		line, err := firstLine(s.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("read ZooKeeper SASL credentials file: %w", err)
		}
		var ok bool
		user, password, ok = strings.Cut(line, ":")
		if !ok || user == "" || password == "" {
			return nil, fmt.Errorf("ZooKeeper SASL credentials file %s: want one user:password line", s.CredentialsFile)
		}
	case s.User == "" || s.PasswordFile == "":
		return nil, fmt.Errorf("ZooKeeper SASL: give a user (--zookeeper.sasl.user) and a password file (--zookeeper.sasl.password-file), or a credentials file (--zookeeper.sasl.credentials-file)")
	default:
		var err error
		if password, err = firstLine(s.PasswordFile); err != nil {
			return nil, fmt.Errorf("read ZooKeeper SASL password file: %w", err)
		}
		if password == "" {
			return nil, fmt.Errorf("ZooKeeper SASL password file %s is empty", s.PasswordFile)
		}
	}
	return &wire.DigestMD5{Username: user, Password: password}, nil
}

// firstLine returns a file's first line that is neither empty nor a '#'
// comment, without surrounding spaces.
func firstLine(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	return "", nil
}
