package sfu

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// dtlsKeys learns, for ONE connection's DTLS handshake in which the bridge is the DTLS
// server, what the DTLS-SRTP key exporter needs (RFC 5764 §4.2, RFC 5705:
// PRF(master_secret, "EXTRACTOR-dtls_srtp", client_random ‖ server_random)), through
// pion's public settings only: the ServerHello hook gives the server random, the cipher
// suite (whose PRF hash the exporter uses) and the SRTP profile the bridge chose; the
// key log writer gives the client random and the master secret (extended or not: the
// exporter's seed is the two randoms either way, RFC 7627 §4).
//
// Correlation is by construction, not by matching: a dtlsKeys belongs to one connection's
// own webrtc.API (sessionAPI), so both hooks only ever see that connection's handshake,
// however many handshakes run at once. pion makes one DTLS conn per PeerConnection and
// never renegotiates it. As DTLS client (relay links) the server random is never seen,
// so keys() refuses and the connection keeps pion's SRTP.
//
// The master secret is never logged nor kept: keys() derives the SRTP send key and
// wipes it. Anything unexpected (a line that does not parse, a second secret, a random
// that changes) poisons the capture, and the connection keeps pion's SRTP.
type dtlsKeys struct {
	mu           sync.Mutex // guards all below: pion's handshake goroutine writes, keys() reads
	serverRandom [32]byte
	suite        dtls.CipherSuiteID
	profile      extension.SRTPProtectionProfile
	hellos       int // ServerHellos seen (a retransmitted flight may make it again)
	clientRandom [32]byte
	master       [48]byte
	secrets      int  // key log lines seen
	bad          bool // something did not fit: never derive
	used         bool // keys() ran: the secret is gone
}

// keyLogLabel is what pion's dtls writes before each TLS 1.2 secret (NSS key log format).
const keyLogLabel = "CLIENT_RANDOM "

// Write implements io.Writer for webrtc.SettingEngine.SetDTLSKeyLogWriter: pion writes
// one line per handshake, "CLIENT_RANDOM <client random hex> <master secret hex>\n",
// in one call (fmt.Fprintf). It is parsed into fixed arrays; the text is not kept.
func (k *dtlsKeys) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.secrets++
	line := bytes.TrimSuffix(p, []byte("\n"))
	if !bytes.HasPrefix(line, []byte(keyLogLabel)) {
		k.bad = true
		return len(p), nil
	}
	fields := bytes.Split(line[len(keyLogLabel):], []byte(" "))
	if len(fields) != 2 || len(fields[0]) != 2*len(k.clientRandom) || len(fields[1]) != 2*len(k.master) ||
		k.secrets > 1 || k.used {
		k.bad = true
		return len(p), nil
	}
	if _, err := hex.Decode(k.clientRandom[:], fields[0]); err != nil {
		k.bad = true
	}
	if _, err := hex.Decode(k.master[:], fields[1]); err != nil {
		k.bad = true
	}
	return len(p), nil
}

// serverHello is the webrtc.SettingEngine.SetDTLSServerHelloMessageHook: it notes what the
// bridge's ServerHello carries and sends it unchanged.
func (k *dtlsKeys) serverHello(m handshake.MessageServerHello) handshake.Message {
	k.mu.Lock()
	defer k.mu.Unlock()
	var profile extension.SRTPProtectionProfile
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 && len(u.MasterKeyIdentifier) == 0 {
			profile = u.ProtectionProfiles[0]
		}
	}
	random := m.Random.MarshalFixed()
	switch {
	case m.CipherSuiteID == nil || profile == 0:
		k.bad = true
	case k.hellos > 0 && (random != k.serverRandom || *m.CipherSuiteID != uint16(k.suite) || profile != k.profile):
		k.bad = true
	default:
		k.serverRandom, k.suite, k.profile = random, dtls.CipherSuiteID(*m.CipherSuiteID), profile
	}
	k.hellos++
	return &m
}

// install sets k's hooks on se, a copy of the bridge's settings for one connection.
func (k *dtlsKeys) install(se *webrtc.SettingEngine) {
	se.SetDTLSKeyLogWriter(k)
	se.SetDTLSServerHelloMessageHook(k.serverHello)
}

// errNoKeys says the handshake did not give what the exporter needs; the connection
// keeps pion's SRTP.
var errNoKeys = errors.New("sfu: DTLS-SRTP keys not learned")

// prfHash is the PRF hash of the cipher suites pion's DTLS offers with certificates
// (their HashFunc in pion/dtls); any other suite is refused.
func prfHash(id dtls.CipherSuiteID) prf.HashFunc {
	switch id {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, dtls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
		dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, dtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
		return sha256.New
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return sha512.New384
	}
	return nil
}

// srtpProfile maps the profile the bridge chose to pion/srtp's (as pion/webrtc does).
func srtpProfile(p extension.SRTPProtectionProfile) (srtp.ProtectionProfile, bool) {
	switch p {
	case extension.SRTP_AEAD_AES_128_GCM:
		return srtp.ProtectionProfileAeadAes128Gcm, true
	case extension.SRTP_AEAD_AES_256_GCM:
		return srtp.ProtectionProfileAeadAes256Gcm, true
	case extension.SRTP_AES128_CM_HMAC_SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, true
	}
	return 0, false // NULL (no encryption) and anything else: never ours
}

// exporter is the TLS exporter over the captured values, for srtp.Config's own
// ExtractSessionKeysFromDTLS (the split into keys and salts stays pion's).
type exporter struct {
	master, seedRandoms []byte
	hash                prf.HashFunc
}

// ExportKeyingMaterial implements srtp.KeyingMaterialExporter (RFC 5705 without context).
func (e exporter) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errNoKeys
	}
	seed := append([]byte(label), e.seedRandoms...)
	return prf.PHash(e.master, seed, length, e.hash)
}

// keys derives the bridge's SRTP send context (the DTLS server's write key and salt) once
// the handshake is done, and a second one of the same key to check it with, and wipes the
// master secret. It fails, and so leaves the
// connection to pion, unless exactly one handshake was seen whole, as its server.
func (k *dtlsKeys) keys() (send *srtp.Context, profile srtp.ProtectionProfile, check *srtp.Context, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer func() { clear(k.master[:]); k.used = true }()
	if k.used || k.bad || k.hellos == 0 || k.secrets != 1 || k.clientRandom == k.serverRandom {
		return nil, 0, nil, fmt.Errorf("%w: used %v bad %v hellos %d secrets %d", errNoKeys, k.used, k.bad, k.hellos, k.secrets)
	}
	hash := prfHash(k.suite)
	profile, ok := srtpProfile(k.profile)
	if hash == nil || !ok {
		return nil, 0, nil, fmt.Errorf("%w: suite %s, profile %#04x", errNoKeys, dtls.CipherSuiteName(k.suite), uint16(k.profile))
	}
	seed := make([]byte, 0, 64)
	seed = append(append(seed, k.clientRandom[:]...), k.serverRandom[:]...)
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(exporter{master: k.master[:], seedRandoms: seed, hash: hash}, false); err != nil {
		return nil, 0, nil, fmt.Errorf("derive SRTP keys: %w", err)
	}
	defer clear(cfg.Keys.RemoteMasterKey)
	defer clear(cfg.Keys.RemoteMasterSalt)
	defer clear(cfg.Keys.LocalMasterKey)
	defer clear(cfg.Keys.LocalMasterSalt)
	send, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("SRTP context: %w", err)
	}
	// A second context of the same key, to decrypt what pion's session sends (keyCheck).
	check, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("SRTP context: %w", err)
	}
	return send, profile, check, nil
}

// wipe forgets the master secret (a connection that ends before keys() ran).
func (k *dtlsKeys) wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.master[:])
	k.used = true
}
