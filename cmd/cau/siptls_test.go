package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cau-project/cau/internal/testutil"
)

// TestSIPTLSFlags: --sip-tls-cert and --sip-tls-key load a certificate (TLS 1.2 at
// least), --sip-tls-ca the roots rooms called over TLS are verified with, and each
// incomplete or unreadable combination is a clear error.
func TestSIPTLSFlags(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := testutil.SelfSignedPEM(t, "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) sipTLSFlags {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		f := newSIPTLSFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f
	}
	server, client, addr, err := parse("--sip-tls-cert", certFile, "--sip-tls-key", keyFile, "--sip-tls-ca", certFile,
		"--sip-tls-addr", "127.0.0.1:5071").config()
	if err != nil || server == nil || len(server.Certificates) != 1 || client == nil || client.RootCAs == nil || addr != "127.0.0.1:5071" {
		t.Fatalf("config: %v %v %v %q", err, server, client, addr)
	}
	if server, _, _, err := parse().config(); err != nil || server != nil {
		t.Errorf("without flags TLS must stay off: %v %v", server, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sip-tls-cert", certFile}, "go together"},
		{[]string{"--sip-tls-addr", "127.0.0.1:5061"}, "needs --sip-tls-cert"},
		{[]string{"--sip-tls-cert", keyFile, "--sip-tls-key", keyFile}, "--sip-tls-cert"},
		{[]string{"--sip-tls-ca", keyFile}, "no PEM certificate"},
		{[]string{"--sip-tls-ca", filepath.Join(dir, "missing.pem")}, "--sip-tls-ca"},
	} {
		if _, _, _, err := parse(c.args...).config(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
