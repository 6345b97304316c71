// Package auth issues and verifies the JWTs that authorise joins and API calls. A token
// names the meeting, the site, the display name and the role of its holder, and what it
// is for (its Use, the aud claim); each surface accepts only its own use, and signaling
// and the API check the role before every action.
package auth

import (
	"errors"
	"fmt"
	"slices"
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

// Use is what a token is for, carried as its aud claim. A surface accepts only tokens
// of its own use, so a credential stolen from one place opens nothing else: a kiosk's
// short join token cannot call the API (and so cannot mint its successor), an API
// token cannot register a bridge, a bridge's credential cannot join a meeting.
type Use string

// Token uses.
const (
	// UseJoin: one meeting's signaling socket (/ws). Short-lived; names a meeting.
	UseJoin Use = "join"
	// UseAPI: the REST API (/api/v1) and the console (/console).
	UseAPI Use = "api"
	// UseBridge: a bridge process's control socket (/bridge); role bridge only.
	UseBridge Use = "bridge"
	// UseKiosk: a meeting-room device's long-lived credential. The API lets it read its
	// own endpoint's plan and mint join tokens for itself, nothing else.
	UseKiosk Use = "kiosk"
)

// Valid reports whether u is a known use.
func (u Use) Valid() bool {
	switch u {
	case UseJoin, UseAPI, UseBridge, UseKiosk:
		return true
	}
	return false
}

// Claims are the fields of a Cầu token.
type Claims struct {
	Meeting  string `json:"meeting,omitempty"`
	Site     string `json:"site,omitempty"`
	Name     string `json:"name,omitempty"`
	Role     Role   `json:"role"`
	Endpoint string `json:"endpoint,omitempty"` // a room device's endpoint id
	// Use is what the token is for. Sign writes it as the aud claim; Verify reads it back.
	Use Use `json:"-"`
	jwt.RegisteredClaims
}

// Principal names the holder for the audit log: the subject if the issuer set one,
// else the room device's endpoint, else role@site. It never comes from client input.
func (c *Claims) Principal() string {
	switch {
	case c.Subject != "":
		return c.Subject
	case c.Endpoint != "":
		return "endpoint:" + c.Endpoint
	case c.Site != "":
		return string(c.Role) + "@" + c.Site
	}
	return string(c.Role)
}

// check enforces what each use may carry.
func (c *Claims) check() error {
	if !c.Role.Valid() {
		return fmt.Errorf("%w: %q", ErrInvalidRole, c.Role)
	}
	if !c.Use.Valid() {
		return fmt.Errorf("%w: %q", ErrInvalidUse, c.Use)
	}
	switch {
	case (c.Use == UseBridge) != (c.Role == RoleBridge):
		return fmt.Errorf("%w: role %s with use %s (bridge tokens are for bridges only)", ErrInvalidUse, c.Role, c.Use)
	case c.Use == UseJoin && c.Meeting == "":
		return fmt.Errorf("%w: a join token names a meeting", ErrInvalidUse)
	case c.Use == UseKiosk && (c.Role != RoleRoom || c.Endpoint == ""):
		return fmt.Errorf("%w: a kiosk token is a room device's (role room, an endpoint)", ErrInvalidUse)
	case c.Use == UseAPI && c.Role == RoleRoom:
		return fmt.Errorf("%w: a room device calls the API with its kiosk token", ErrInvalidUse)
	}
	return nil
}

// Errors returned by Sign and Verify.
var (
	ErrNoKey       = errors.New("no signing key configured")
	ErrInvalidRole = errors.New("token has no valid role")
	ErrInvalidUse  = errors.New("token is not for this use")
	ErrWeakKey     = errors.New("signing key too short")
)

// CheckKey refuses a key too short to sign or verify with outside dev mode, and the
// public dev key. It is for start-up checks of configured keys.
func CheckKey(key []byte) error {
	if string(key) == DevKey {
		return errors.New("the public dev key is for --dev only")
	}
	if len(key) < MinKeyBytes {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrWeakKey, len(key), MinKeyBytes)
	}
	return nil
}

// Keys holds the signing key and any previous keys still accepted during rotation.
type Keys struct {
	// Current signs new tokens and verifies.
	Current []byte
	// Previous keys only verify, so tokens issued before a rotation keep working
	// until they expire.
	Previous [][]byte
}

// Sign returns a signed token for c valid for ttl from now. c.Use must be set and
// agree with the role (see Use).
func (k Keys) Sign(c Claims, ttl time.Duration) (string, error) {
	if len(k.Current) == 0 {
		return "", ErrNoKey
	}
	if err := c.check(); err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	now := time.Now()
	c.Audience = jwt.ClaimStrings{string(c.Use)}
	c.Issuer = Issuer
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.Current)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks the signature (HS256 only), expiry, issuer, role and use of token, and
// accepts it only if its use is one of accept. Keys shorter than MinKeyBytes never
// verify: an empty previous key left by a configuration slip would otherwise accept
// tokens anyone can sign (the current key's length is checked at start-up; dev mode
// uses the dev key, which is long enough).
func (k Keys) Verify(token string, accept ...Use) (*Claims, error) {
	if len(k.Current) == 0 {
		return nil, ErrNoKey
	}
	var lastErr error
	for _, key := range append([][]byte{k.Current}, k.Previous...) {
		if len(key) < MinKeyBytes {
			lastErr = ErrWeakKey
			continue
		}
		c := &Claims{}
		_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(Issuer),
			jwt.WithLeeway(5*time.Second),
		)
		if err == nil {
			if len(c.Audience) == 1 {
				c.Use = Use(c.Audience[0])
			}
			if err := c.check(); err != nil {
				return nil, fmt.Errorf("verify token: %w", err)
			}
			if !slices.Contains(accept, c.Use) {
				return nil, fmt.Errorf("verify token: %w: %s token, want %v", ErrInvalidUse, c.Use, accept)
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
