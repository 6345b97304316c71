package auth_test

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cau-project/cau/auth"
)

var current = []byte("auth-test-current-key-0123456789abcdef")

// forge signs claims with key directly, as an attacker who guessed or knows key would.
func forge(t *testing.T, key []byte, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	return s
}

// TestEmptyPreviousKeyVerifiesNothing: a previous key left empty by a config mistake
// (CAU_PREVIOUS_TOKEN_KEYS=",") must not verify a token an attacker signs with the empty key.
func TestEmptyPreviousKeyVerifiesNothing(t *testing.T) {
	claims := jwt.MapClaims{"iss": auth.Issuer, "role": "admin", "aud": "api", "exp": time.Now().Add(time.Hour).Unix()}
	for _, prev := range [][]byte{{}, []byte("short")} {
		keys := auth.Keys{Current: current, Previous: [][]byte{prev}}
		tok := forge(t, prev, claims)
		if c, err := keys.Verify(tok, auth.UseAPI); err == nil {
			t.Errorf("previous key %q verified a forged token: %+v", prev, c)
		}
	}
}
