package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// sipTLSFlags are the flags of SIP over TLS (sipgw/tls.go). Without --sip-tls-cert the
// gateway listens over UDP and TCP only, in --dev too: a self-signed certificate made at
// each start would be refused by a codec that verifies, and one that does not verify
// gains nothing from it on loopback.
type sipTLSFlags struct {
	cert, key, addr, ca *string
}

func newSIPTLSFlags(fs *flag.FlagSet) sipTLSFlags {
	return sipTLSFlags{
		cert: fs.String("sip-tls-cert", "", "PEM certificate (chain) of SIP over TLS: with it, SIP also listens over TLS (--sip-tls-addr)"),
		key:  fs.String("sip-tls-key", "", "PEM private key of --sip-tls-cert"),
		addr: fs.String("sip-tls-addr", "", "SIP over TLS listen address (ip:port; default --sip's ip, port 5061)"),
		ca: fs.String("sip-tls-ca", "", "PEM certificates that verify the rooms Cầu calls over TLS (sips: or ;transport=tls URIs); "+
			"default: the system's roots"),
	}
}

// config is the server and client TLS configuration of the gateway; server is nil
// without --sip-tls-cert.
func (f sipTLSFlags) config() (server, client *tls.Config, addr string, err error) {
	if *f.ca != "" {
		pem, err := os.ReadFile(*f.ca)
		if err != nil {
			return nil, nil, "", fmt.Errorf("--sip-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, "", fmt.Errorf("--sip-tls-ca %s: no PEM certificate in it", *f.ca)
		}
		client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	switch {
	case *f.cert == "" && *f.key == "":
		if *f.addr != "" {
			return nil, nil, "", errors.New("--sip-tls-addr needs --sip-tls-cert and --sip-tls-key")
		}
		return nil, client, "", nil
	case *f.cert == "" || *f.key == "":
		return nil, nil, "", errors.New("--sip-tls-cert and --sip-tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(*f.cert, *f.key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("--sip-tls-cert: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, client, *f.addr, nil
}
