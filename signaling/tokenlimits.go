package signaling

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/protocol"
)

// Default caps per join token (issue 12, finding 4). A token is a bearer credential: a
// leaked join link or kiosk token must not open a meeting's worth of sessions, nor turn
// into a join storm that costs every bridge peers and signaling its CPU.
const (
	// DefaultMaxSessionsPerToken bounds the sessions one token holds at once on a
	// signaling node. A person opens a link on a laptop and a phone, a reload overlaps
	// the old socket for a few seconds; 16 leaves room for that and for a site that
	// shares one link among a few devices.
	DefaultMaxSessionsPerToken = 16
	// DefaultMaxJoinsPerTokenPerMinute bounds the join attempts with one token, refused
	// ones included, per minute (a bucket that refills one every 60/n seconds, n deep).
	// A client reconnects with backoff; a loop that rejoins does not.
	DefaultMaxJoinsPerTokenPerMinute = 30
	// DefaultMaxViewersPerToken bounds the receive-only sessions (WHEP viewers) one token
	// holds at once (and their joins per minute, at twice that). A watch link is shared: a wall screen,
	// an overflow room where everyone opens the link at the start, a few dozen viewers
	// at once are what its users expect, so viewers are counted apart from the token's
	// sessions that publish, under a cap of their own. Each still costs a bridge peer,
	// bounded by the bridges' caps and the WHIP/WHEP gateway's.
	DefaultMaxViewersPerToken = 200
	// tokenIdle is how long a token with no session open is remembered: after a minute
	// its join bucket is full again, so forgetting it changes nothing.
	tokenIdle = time.Minute
)

// Limit names, the values of cau_signaling_limited_total's label (bounded).
const (
	limitTokenSessions = "token_sessions"
	limitTokenJoins    = "token_joins"
	limitBridgePeers   = "bridge_peers"
	limitParticipants  = "meeting_participants"
	limitAddrSockets   = "addr_sockets"
)

// tokenLimiter counts, per join token, the open sessions and the recent join attempts. A
// token is known by its SHA-256 (the map never holds a credential). Entries of tokens
// with nothing open are pruned once they have been idle for tokenIdle, so the map holds
// the tokens in use in the last minute or two, never every token ever seen.
type tokenLimiter struct {
	mu    sync.Mutex // guards uses and swept
	uses  map[tokenKey]*tokenUse
	swept time.Time
	// idle is how long an unused token is kept, and the wait between sweeps: tokenIdle
	// unless a test shortens it.
	idle time.Duration
}

type tokenUse struct {
	open  int
	joins *rate.Limiter
	last  time.Time // the last join attempt or release
}

// tokenKey is what the limiter knows a token by.
type tokenKey [sha256.Size]byte

func keyOf(tok string) tokenKey { return sha256.Sum256([]byte(tok)) }

// viewerKeyOf is what the limiter knows a token's receive-only sessions by: apart from
// its other sessions.
func viewerKeyOf(tok string) tokenKey { return sha256.Sum256([]byte("viewer\x00" + tok)) }

// acquire counts a join attempt with the token key at now. It returns the limit that
// refuses it ("" if none); when it is admitted the caller must call release(key) once the
// session ends. maxOpen or perMinute < 0: that cap is off.
func (l *tokenLimiter) acquire(key tokenKey, maxOpen, perMinute int, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	u := l.uses[key]
	if u == nil {
		u = &tokenUse{joins: rate.NewLimiter(rate.Inf, 0)}
		if perMinute >= 0 {
			u.joins = rate.NewLimiter(rate.Every(time.Minute/time.Duration(max(perMinute, 1))), perMinute)
		}
		if l.uses == nil {
			l.uses = map[tokenKey]*tokenUse{}
		}
		l.uses[key] = u
	}
	u.last = now
	if !u.joins.AllowN(now, 1) {
		return limitTokenJoins
	}
	if maxOpen >= 0 && u.open >= maxOpen {
		return limitTokenSessions
	}
	u.open++
	return ""
}

// release uncounts a session acquire admitted.
func (l *tokenLimiter) release(key tokenKey, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.uses[key]; u != nil && u.open > 0 {
		u.open--
		u.last = now
	}
}

// sweep forgets idle tokens, at most once per idle period. Caller holds l.mu.
func (l *tokenLimiter) sweep(now time.Time) {
	idle := l.idle
	if idle == 0 {
		idle = tokenIdle
	}
	if now.Sub(l.swept) < idle {
		return
	}
	l.swept = now
	for k, u := range l.uses {
		if u.open == 0 && now.Sub(u.last) >= idle {
			delete(l.uses, k)
		}
	}
}

// tracked sweeps at now and returns how many tokens the limiter remembers (tests:
// pruning works).
func (l *tokenLimiter) tracked(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	return len(l.uses)
}

// admitToken counts a join against its token's caps. A refused join is answered (with
// capacity or rate_limited), logged with who the token names (never the token), counted,
// and closed with 1013: the client may come back later.
func (s *session) admitToken(envID, tok string, claims *auth.Claims) error {
	cfg := s.srv.cfg
	key, maxOpen, perMinute := keyOf(tok), cfg.MaxSessionsPerToken, cfg.MaxJoinsPerTokenPerMinute
	if s.receiveOnly {
		// Viewers' joins: the room's screens at once, and each coming back once.
		key, maxOpen, perMinute = viewerKeyOf(tok), cfg.MaxViewersPerToken, 2*cfg.MaxViewersPerToken
	}
	limit := s.srv.tokens.acquire(key, maxOpen, perMinute, time.Now())
	switch limit {
	case "":
		s.mu.Lock()
		s.token = &key
		s.mu.Unlock()
		return nil
	case limitTokenJoins:
		s.log.Warn("join refused: too many joins with this token", "who", claims.Principal(),
			"limit_per_minute", perMinute, "viewer", s.receiveOnly)
		s.reject(envID, protocol.CodeRateLimited, "too many joins with this token; try again in a minute")
	default:
		s.log.Warn("join refused: too many sessions with this token", "who", claims.Principal(),
			"limit", maxOpen, "viewer", s.receiveOnly)
		s.reject(envID, protocol.CodeCapacity, "this token has as many sessions open as it may")
	}
	cfg.Metrics.limited(limit)
	return &closeError{code: websocket.CloseTryAgainLater, reason: "token limit"}
}

// releaseToken uncounts the session from its token's open sessions (close calls it).
func (s *session) releaseToken() {
	s.mu.Lock()
	key := s.token
	s.token = nil
	s.mu.Unlock()
	if key != nil {
		s.srv.tokens.release(*key, time.Now())
	}
}
