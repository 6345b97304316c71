package sfu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestCertificateIsSharedAndRenewed: every connection gets the same certificate until
// it comes within certRenewBefore of its expiry; then a new one.
func TestCertificateIsSharedAndRenewed(t *testing.T) {
	var c certSource
	fingerprint := func() string {
		t.Helper()
		certs, err := c.get()
		if err != nil {
			t.Fatal(err)
		}
		fp, err := certs[0].GetFingerprints()
		if err != nil {
			t.Fatal(err)
		}
		return fp[0].Value
	}
	first := fingerprint()
	if again := fingerprint(); again != first {
		t.Fatalf("second connection's certificate %s, want the first's %s", again, first)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	old, err := webrtc.NewCertificate(key, x509.Certificate{SerialNumber: big.NewInt(1),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(certRenewBefore / 2)})
	if err != nil {
		t.Fatal(err)
	}
	c.cert = old
	fpOld, _ := old.GetFingerprints()
	renewed := fingerprint()
	if renewed == fpOld[0].Value || renewed == first {
		t.Fatal("a certificate expiring within certRenewBefore was not replaced")
	}
	if left := time.Until(c.cert.Expires()); left < 7*24*time.Hour {
		t.Fatalf("the new certificate expires in %v", left)
	}
}
