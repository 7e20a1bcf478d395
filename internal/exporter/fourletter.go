package exporter

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Bounds of what is read from one four-letter word or AdminServer
// command: a leader's mntr is about 25 KB (more with many namespaces);
// cons grows with the connections. A longer answer is an error, never
// silently cut.
const (
	maxAnswer     = 1 << 20
	maxConsAnswer = 16 << 20
)

var errTooLarge = errors.New("answer too long")

func answerLimit(cmd string) int64 {
	if cmd == "cons" || cmd == "connections" {
		return maxConsAnswer
	}
	return maxAnswer
}

// readAnswer reads a whole answer to cmd into buf, at most its limit;
// size is its announced length (-1 unknown), read in one go when within
// the limit.
func readAnswer(buf *bytes.Buffer, r io.Reader, cmd string, size int64) ([]byte, error) {
	limit := answerLimit(cmd)
	if size > 0 && size <= limit {
		buf.Grow(int(size) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	b := buf.Bytes()
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes (not a ZooKeeper answer, or more than the exporter reads)", errTooLarge, limit)
	}
	return b, err
}

// safeWords are the only four-letter words the exporter sends: none of
// them changes the server's state (srst, crst, ... are never sent).
var safeWords = map[string]bool{"mntr": true, "srvr": true, "cons": true, "wchs": true}

// fourLetterWord sends cmd to addr and reads the whole answer, within
// ctx's deadline for the connection, the write and every read. tlsConf
// (nil for plain TCP) is used for a secure client port.
func fourLetterWord(ctx context.Context, addr, cmd string, tlsConf *tls.Config) (string, error) {
	if !safeWords[cmd] {
		return "", fmt.Errorf("four-letter word %q is not one the exporter sends", cmd)
	}
	d := net.Dialer{KeepAlive: -1} // one exchange: no keep-alive probes to set up
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s to %s: %w", cmd, addr, err)
	}
	defer conn.Close()
	// The deadline covers the handshake, the write and every read; a
	// context cancelled early also ends the exchange.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if tlsConf != nil {
		c := tlsConf.Clone()
		if c.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			c.ServerName = host
		}
		tc := tls.Client(conn, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("%s to %s: TLS handshake: %w", cmd, addr, err)
		}
		conn = tc
	}
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", fmt.Errorf("%s to %s: send: %w", cmd, addr, ctxErr(ctx, err))
	}
	buf := answerBuffers.get()
	defer answerBuffers.put(buf)
	b, err := readAnswer(buf, conn, cmd, -1)
	if len(b) == 0 && err != nil || err != nil && !(len(b) > 0 && isClosed(err)) {
		return "", fmt.Errorf("%s to %s: read answer: %w", cmd, addr, ctxErr(ctx, err))
	}
	return string(b), nil
}

// isClosed is an end of answer that ZooKeeper signals by resetting the
// connection rather than closing it.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)
}

// ctxErr prefers the context's error (deadline exceeded) to the socket's.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
