package sipgw

import (
	"strings"
	"testing"
	"time"
)

// TestLoadAccounts: the accounts file's lines, its comments, a password with blanks,
// and clear errors for a short line or a user given twice.
func TestLoadAccounts(t *testing.T) {
	got, err := LoadAccounts(strings.NewReader("# rooms\n\nphong-a xa-a mat khau a\n  phong-b xa-b b\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Account{{User: "phong-a", Site: "xa-a", Password: "mat khau a"}, {User: "phong-b", Site: "xa-b", Password: "b"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("accounts %+v, want %+v", got, want)
	}
	for _, bad := range []string{"phong-a xa-a\n", "a s p\na t q\n"} {
		if _, err := LoadAccounts(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestNonce: a nonce is accepted while fresh, refused once old, from the future, or
// altered, and another gateway's is refused.
func TestNonce(t *testing.T) {
	a := newAuthenticator("cau", []Account{{User: "u", Password: "p", Site: "s"}})
	now := time.Now()
	n := a.nonce(now)
	if !a.fresh(n, now.Add(time.Minute)) {
		t.Error("a fresh nonce refused")
	}
	if a.fresh(n, now.Add(nonceLife+time.Second)) {
		t.Error("an old nonce accepted")
	}
	if a.fresh(a.nonce(now.Add(time.Hour)), now) {
		t.Error("a nonce from the future accepted")
	}
	altered := []byte(n)
	altered[len(altered)-1] ^= 1
	if a.fresh(string(altered), now) || a.fresh("zz", now) {
		t.Error("an altered or malformed nonce accepted")
	}
	if other := newAuthenticator("cau", []Account{{User: "u"}}); other.fresh(n, now) {
		t.Error("another gateway's nonce accepted")
	}
}
