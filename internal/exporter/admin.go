package exporter

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"
)

// newAdminClient builds the keep-alive HTTP client used for the
// AdminServers of one ensemble. Deadlines come from each request's
// context.
func newAdminClient(tlsConf *tls.Config) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     50 * time.Second, // below the AdminServer's idle timeout
		ForceAttemptHTTP2:   false,
	}
	// A redirect is an answer, never followed: the exporter asks the
	// AdminServers it was given, and no other URL.
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// adminAnswer is one AdminServer command's answer. Its body is held in
// a buffer of answerBuffers: release it once the body is parsed.
type adminAnswer struct {
	Status int
	Body   []byte
	buf    *bytes.Buffer
}

func (a adminAnswer) release() {
	if a.buf != nil {
		answerBuffers.put(a.buf)
	}
}

// adminCommand GETs base/commands/name.
func adminCommand(ctx context.Context, c *http.Client, base, name string) (adminAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/commands/"+name, nil)
	if err != nil {
		return adminAnswer{}, fmt.Errorf("AdminServer %s: %w", name, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return adminAnswer{}, fmt.Errorf("AdminServer %s at %s: %w", name, base, err)
	}
	defer resp.Body.Close()
	buf := answerBuffers.get()
	b, err := readAnswer(buf, resp.Body, name, resp.ContentLength)
	if err != nil {
		answerBuffers.put(buf)
		return adminAnswer{Status: resp.StatusCode}, fmt.Errorf("AdminServer %s at %s: read answer: %w", name, base, ctxErr(ctx, err))
	}
	return adminAnswer{Status: resp.StatusCode, Body: b, buf: buf}, nil
}
