package zktest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs are PEM files made for a test: a CA, a server certificate for
// 127.0.0.1/localhost signed by it, a client certificate signed by it, and
// an unrelated CA that must be refused.
type Certs struct {
	CAFile         string
	ServerCert     string
	ServerKey      string
	ServerKeyStore string // server key and certificate in one PEM file (ZooKeeper's PEM key store)
	ClientCert     string
	ClientKey      string
	OtherCAFile    string // a CA that did not sign the server's certificate
}

// GenerateCerts writes a fresh set of certificates into dir.
func GenerateCerts(dir string) (*Certs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Certs{
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCert:     filepath.Join(dir, "server.pem"),
		ServerKey:      filepath.Join(dir, "server-key.pem"),
		ServerKeyStore: filepath.Join(dir, "server-keystore.pem"),
		ClientCert:     filepath.Join(dir, "client.pem"),
		ClientKey:      filepath.Join(dir, "client-key.pem"),
		OtherCAFile:    filepath.Join(dir, "other-ca.pem"),
	}
	ca, caKey, caPEM, err := newCA("zktest CA")
	if err != nil {
		return nil, err
	}
	_, _, otherPEM, err := newCA("zktest unrelated CA")
	if err != nil {
		return nil, err
	}
	srvPEM, srvKeyPEM, err := newLeaf(ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	cliPEM, cliKeyPEM, err := newLeaf(ca, caKey, "zktest client", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		c.CAFile:         caPEM,
		c.OtherCAFile:    otherPEM,
		c.ServerCert:     srvPEM,
		c.ServerKey:      srvKeyPEM,
		c.ServerKeyStore: append(append([]byte{}, srvKeyPEM...), srvPEM...),
		c.ClientCert:     cliPEM,
		c.ClientKey:      cliKeyPEM,
	}
	for name, b := range files {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
