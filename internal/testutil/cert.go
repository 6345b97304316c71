package testutil

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/cau-project/cau/turnserver"
)

// SelfSignedPEM makes a self-signed certificate for names (turnserver.SelfSigned, valid
// an hour) and returns it and its private key PEM-encoded, as the TLS flags and the
// rooms' SIP stacks read them from files.
func SelfSignedPEM(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	cert, err := turnserver.SelfSigned(names, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatalf("self-signed certificate's key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
}
