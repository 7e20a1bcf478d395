package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/zkprom/zkprom/internal/zk/jute"
)

// SASLMechanism is one SASL mechanism's client side (DigestMD5 here;
// GSSAPI would be another). It makes a fresh exchange for every connection.
type SASLMechanism interface {
	// Name is the mechanism's name, as in errors ("DIGEST-MD5").
	Name() string
	// Start begins an exchange with the server at addr (the host:port
	// dialed: GSSAPI would derive the server's principal from it).
	Start(addr string) (SASLExchange, error)
}

// SASLExchange is one exchange in progress.
type SASLExchange interface {
	// Step takes the server's last token (nil before the first) and returns
	// the next token to send. done says the client is satisfied: the token
	// returned, when not nil, is sent without waiting for more.
	Step(challenge []byte) (response []byte, done bool, err error)
}

// ErrSASL marks a SASL exchange that failed on the client's side (a
// challenge it cannot answer, a server that does not prove it knows the
// password). The server refusing the credentials is ErrAuthFailed.
var ErrSASL = errors.New("zookeeper SASL authentication failed")

// maxSASLSteps bounds an exchange (DIGEST-MD5 takes two round trips).
const maxSASLSteps = 10

// SASL authenticates the session with a SASL mechanism (OpCode sasl). The
// server adds the identity sasl:<user> to the session when it accepts;
// when it refuses, it answers ErrAuthFailed and closes the connection.
// Send it before other requests: the server treats requests sent meanwhile
// as the session's identity of that moment. The credentials never appear
// in errors.
func (c *Conn) SASL(ctx context.Context, m SASLMechanism) error {
	if err := c.sasl(ctx, m); err != nil {
		return fmt.Errorf("zookeeper SASL %s with %s: %w", m.Name(), c.addr, err)
	}
	return nil
}

func (c *Conn) sasl(ctx context.Context, m SASLMechanism) error {
	ex, err := m.Start(c.addr)
	if err != nil {
		return errors.Join(ErrSASL, err)
	}
	tok, done, err := ex.Step(nil)
	for step := 0; ; step++ {
		if err != nil {
			return errors.Join(ErrSASL, err)
		}
		if tok == nil {
			if done {
				return nil
			}
			tok = []byte{} // null is not a token to the server
		}
		if step == maxSASLSteps {
			return fmt.Errorf("%w: no end after %d steps", ErrSASL, step)
		}
		var resp jute.SetSASLResponse
		_, err = c.do(ctx, &request{op: jute.OpSASL, body: &jute.GetSASLRequest{Token: tok},
			resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
		if errors.Is(err, ErrAuthFailed) {
			return fmt.Errorf("%w: the server refused the credentials (check the user name and password, and the server's JAAS file)", err)
		}
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		tok, done, err = ex.Step(resp.Token)
	}
}
