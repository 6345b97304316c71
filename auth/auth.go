// Package auth issues and verifies the JWTs that authorise joins and API calls. A token
// names the meeting, the site, the display name and the role of its holder; signaling and
// the API check the role before every action.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a token's holder may do.
type Role string

// Roles, from most to least privileged. See DESIGN.md "Roles".
const (
	RoleAdmin       Role = "admin"       // operators: registry, schedule, everything
	RoleTechnician  Role = "technician"  // console, tests; no meeting control
	RoleChair       Role = "chair"       // controls the floor of the meeting
	RoleParticipant Role = "participant" // an official's browser
	RoleRoom        Role = "room"        // a site's meeting-room device
	RoleBridge      Role = "bridge"      // a bridge process registering with signaling
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleTechnician, RoleChair, RoleParticipant, RoleRoom, RoleBridge:
		return true
	}
	return false
}

// Issuer is the iss claim of tokens Cầu signs.
const Issuer = "cau"

// DevKey signs tokens in dev mode only. It is public, so a server started with it must
// never face a network: `cau serve` refuses it outside --dev.
const DevKey = "cau-dev-signing-key-do-not-use-in-production"

// MinKeyBytes is the shortest signing key accepted outside dev mode (HS256 wants ≥ 256 bits).
const MinKeyBytes = 32

// Claims are the fields of a Cầu token.
type Claims struct {
	Meeting  string `json:"meeting,omitempty"`
	Site     string `json:"site,omitempty"`
	Name     string `json:"name,omitempty"`
	Role     Role   `json:"role"`
	Endpoint string `json:"endpoint,omitempty"` // a room device's endpoint id
	jwt.RegisteredClaims
}

// Errors returned by Verify.
var (
	ErrNoKey       = errors.New("no signing key configured")
	ErrInvalidRole = errors.New("token has no valid role")
)

// Keys holds the signing key and any previous keys still accepted during rotation.
type Keys struct {
	// Current signs new tokens and verifies.
	Current []byte
	// Previous keys only verify, so tokens issued before a rotation keep working
	// until they expire.
	Previous [][]byte
}

// Sign returns a signed token for c valid for ttl from now.
func (k Keys) Sign(c Claims, ttl time.Duration) (string, error) {
	if len(k.Current) == 0 {
		return "", ErrNoKey
	}
	if !c.Role.Valid() {
		return "", fmt.Errorf("sign token: %w: %q", ErrInvalidRole, c.Role)
	}
	now := time.Now()
	c.Issuer = Issuer
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.Current)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks the signature (HS256 only), expiry, issuer and role of token.
func (k Keys) Verify(token string) (*Claims, error) {
	if len(k.Current) == 0 {
		return nil, ErrNoKey
	}
	var lastErr error
	for _, key := range append([][]byte{k.Current}, k.Previous...) {
		c := &Claims{}
		_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(Issuer),
			jwt.WithLeeway(5*time.Second),
		)
		if err == nil {
			if !c.Role.Valid() {
				return nil, fmt.Errorf("verify token: %w: %q", ErrInvalidRole, c.Role)
			}
			return c, nil
		}
		lastErr = err
		if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			break // expired, malformed…: another key will not help
		}
	}
	return nil, fmt.Errorf("verify token: %w", lastErr)
}
