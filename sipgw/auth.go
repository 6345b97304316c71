package sipgw

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Digest authentication of calls dialled in (RFC 3261 §22, RFC 2617 digest with qop
// auth). With accounts configured every INVITE must prove one: the first is challenged
// with 401 and a nonce, the retry carries the room's credentials, and the call joins as
// the account's site, so a room is its site in the meeting, the roll call and the
// console. Without accounts calls are taken as before (Config.Allow is then the guard).

// Account is one room's SIP credentials and the site it joins as.
type Account struct {
	User     string
	Password string // never logged
	Site     string
}

// nonceLife is how long a challenge's nonce is accepted: a room answers at once, and a
// stale nonce is challenged again with stale=true, which clients retry silently.
const nonceLife = 5 * time.Minute

// DefaultRealm is the digest realm when Config.Realm is empty.
const DefaultRealm = "cau"

// LoadAccounts reads accounts, one per line: "user site password" separated by blanks;
// blank lines and lines starting with # are skipped. The password is the rest of the
// line, so it may hold blanks.
func LoadAccounts(r io.Reader) ([]Account, error) {
	var out []Account
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("sip accounts line %d: want \"user site password\"", n)
		}
		user, site := f[0], f[1]
		pass := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(line, user)), site))
		if seen[user] {
			return nil, fmt.Errorf("sip accounts line %d: user %q twice", n, user)
		}
		seen[user] = true
		out = append(out, Account{User: user, Site: site, Password: pass})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sip accounts: %w", err)
	}
	return out, nil
}

// authenticator checks digest credentials against the accounts. Read-only after New.
type authenticator struct {
	realm    string
	accounts map[string]Account
	key      [32]byte // signs nonces, so that they need no state
}

func newAuthenticator(realm string, accounts []Account) *authenticator {
	if len(accounts) == 0 {
		return nil
	}
	a := &authenticator{realm: realm, accounts: make(map[string]Account, len(accounts))}
	for _, acc := range accounts {
		a.accounts[acc.User] = acc
	}
	_, _ = rand.Read(a.key[:])
	return a
}

// nonce is a timestamp and its MAC: the gateway knows its own nonces without keeping them.
func (a *authenticator) nonce(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	m := hmac.New(sha256.New, a.key[:])
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return hex.EncodeToString(b[:])
}

// fresh reports whether nonce is one of ours, issued less than nonceLife ago.
func (a *authenticator) fresh(nonce string, now time.Time) bool {
	b, err := hex.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false
	}
	m := hmac.New(sha256.New, a.key[:])
	m.Write(b[:8])
	if !hmac.Equal(b[8:], m.Sum(nil)[:16]) {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return now.Sub(issued) < nonceLife && !issued.After(now.Add(time.Minute))
}

// check verifies req's Authorization. It returns the account, or the challenge to send
// (stale: the credentials were right but the nonce expired).
func (a *authenticator) check(req *sip.Request, now time.Time) (acc Account, ok bool, challenge string) {
	stale := false
	if h := req.GetHeader("Authorization"); h != nil {
		cred, err := digest.ParseCredentials(h.Value())
		if err == nil && cred.Realm == a.realm {
			acc, known := a.accounts[cred.Username]
			if known && a.matches(acc, cred, string(req.Method)) {
				if a.fresh(cred.Nonce, now) {
					return acc, true, ""
				}
				stale = true
			}
		}
	}
	chal := digest.Challenge{Realm: a.realm, Nonce: a.nonce(now), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return Account{}, false, chal.String()
}

// matches recomputes the response cred should carry for acc and compares it in constant
// time.
func (a *authenticator) matches(acc Account, cred *digest.Credentials, method string) bool {
	chal := &digest.Challenge{Realm: a.realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: method, URI: cred.URI, Username: acc.User,
		Password: acc.Password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || cred.QOP == "auth-int" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) == 1
}
