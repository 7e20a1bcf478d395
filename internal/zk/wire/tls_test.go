package wire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func tlsDial(t *testing.T, caFile string, withCert bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if withCert {
		cert, err := tls.LoadX509KeyPair(ensemble.TLS.ClientCert, ensemble.TLS.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	d := &tls.Dialer{Config: cfg}
	return d.DialContext
}

// TestTLS: the Dial hook carries TLS; the server maps the client
// certificate to an x509 identity, and a wrong CA or a missing certificate
// fails the connection.
func TestTLS(t *testing.T) {
	needEnsemble(t)
	ctx := ctxT(t, 20*time.Second)
	addr := ensemble.Servers[0].SecureAddr
	c, err := Dial(ctx, addr, Config{Dial: tlsDial(t, ensemble.TLS.CAFile, true)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Get(ctx, "/", false); err != nil {
		t.Fatal(err)
	}
	who, err := c.WhoAmI(ctx)
	if err != nil || len(who) == 0 || who[0].AuthScheme != "x509" || !strings.Contains(who[0].User, "CN=") {
		t.Errorf("whoAmI over TLS = %+v %v, want an x509 identity", who, err)
	}
	if _, err := Dial(ctx, addr, Config{Dial: tlsDial(t, ensemble.TLS.OtherCAFile, true)}); err == nil {
		t.Error("connected to a server whose certificate the CA did not sign")
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := Dial(short, addr, Config{Dial: tlsDial(t, ensemble.TLS.CAFile, false)}); err == nil {
		c.Disconnect()
		t.Error("connected without the client certificate the server needs")
	}
}
