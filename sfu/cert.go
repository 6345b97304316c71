package sfu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// certRenewBefore is how long before its expiry the bridge's certificate is replaced:
// pion's certificates are valid for a month, and a connection made with one keeps it.
const certRenewBefore = 24 * time.Hour

// certSource is the DTLS certificate every connection of a bridge presents, as one
// server presents one TLS certificate (mediasoup does the same per worker). Left to
// itself, pion makes a key pair and a certificate for each connection: an ECDSA key
// generation and a signature on every join, and 2.8 kB that each connection keeps
// (issue 11). It is replaced a day before it expires.
type certSource struct {
	mu   sync.Mutex // guards cert
	cert *webrtc.Certificate
}

// get returns the certificate to configure a new connection with.
func (c *certSource) get() ([]webrtc.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil || time.Until(c.cert.Expires()) < certRenewBefore {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("DTLS key: %w", err)
		}
		cert, err := webrtc.GenerateCertificate(key)
		if err != nil {
			return nil, fmt.Errorf("DTLS certificate: %w", err)
		}
		c.cert = cert
	}
	return []webrtc.Certificate{*c.cert}, nil
}
