package main

import (
	"strconv"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/zk"
)

// addZooKeeperFlags adds the flags every subcommand that talks to
// ZooKeeper shares, and returns the config they fill in.
func addZooKeeperFlags(cmd *kingpin.CmdClause, defaultServers string) *zk.Config {
	cfg := &zk.Config{}
	f := cmd.Flag("zookeeper.servers", "ZooKeeper connect string: host:port[,host:port...][/chroot].")
	if defaultServers != "" {
		f.Default(defaultServers)
	}
	f.StringVar(&cfg.Servers)
	cmd.Flag("zookeeper.auth-file", "File with ZooKeeper digest credentials, one user:password per line (never put them on the command line).").
		StringVar(&cfg.AuthFile)
	cmd.Flag("zookeeper.sasl.mechanism", "SASL mechanism to authenticate with (DIGEST-MD5, ZooKeeper's authProvider.sasl); on when SASL credentials are given.").
		StringVar(&cfg.SASL.Mechanism)
	cmd.Flag("zookeeper.sasl.user", "SASL user name (the session is then sasl:<user>).").
		StringVar(&cfg.SASL.User)
	cmd.Flag("zookeeper.sasl.password-file", "File whose first line is the SASL user's password.").
		StringVar(&cfg.SASL.PasswordFile)
	cmd.Flag("zookeeper.sasl.credentials-file", "File with one SASL user:password line (instead of --zookeeper.sasl.user and --zookeeper.sasl.password-file).").
		StringVar(&cfg.SASL.CredentialsFile)
	cmd.Flag("zookeeper.tls.ca-file", "CA certificate (PEM) that verifies ZooKeeper's TLS certificate; turns TLS on.").
		StringVar(&cfg.TLS.CAFile)
	cmd.Flag("zookeeper.tls.cert-file", "Client certificate (PEM) for ZooKeeper's TLS port.").
		StringVar(&cfg.TLS.CertFile)
	cmd.Flag("zookeeper.tls.key-file", "Key (PEM) of the client certificate.").
		StringVar(&cfg.TLS.KeyFile)
	cmd.Flag("zookeeper.tls.server-name", "Name expected in ZooKeeper's certificate (default: the host of each server).").
		StringVar(&cfg.TLS.ServerName)
	cmd.Flag("zookeeper.session-timeout", "ZooKeeper session timeout (the server clamps it to 2–20 ticks).").
		Default(zk.DefaultSessionTimeout.String()).DurationVar(&cfg.SessionTimeout)
	cmd.Flag("zookeeper.max-buffer", "Largest ZooKeeper reply in bytes the client takes (the Java client's jute.maxbuffer, 16 KiB to 256 MiB): raise it for a parent with more children than one listing of 1 MiB holds.").
		Default(strconv.Itoa(zk.DefaultMaxBuffer)).IntVar(&cfg.MaxBuffer)
	return cfg
}
