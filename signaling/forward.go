package signaling

// Forwarding a session to its meeting's owner (issue 16). A join that reaches a node
// other than the owner (owner.go) is not run here: this node dials the owner's /ws,
// sends it the join as it came, and from then on copies frames both ways. The owner sees
// a session like any other; the client's address travels in a header that the nodes
// sign with the token key they share, so the owner's per-address limits still apply to
// the client and not to the node in between, and a forwarded session is never forwarded
// again (no loops while a lease changes hands).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

const (
	// headerForwarded carries "<client host>;<unix seconds>;<hex HMAC>" on a socket one
	// node opens to another for a client.
	headerForwarded = "Cau-Forwarded"
	// forwardSkew bounds the age of a forwarded header (replay of a captured one).
	forwardSkew = time.Minute
	// ownerRetry is how often a join whose owner cannot be reached asks again who owns
	// the meeting (the lease of a dead owner expires, and this node may take it).
	ownerRetry = 200 * time.Millisecond
)

func forwardMAC(key []byte, host string, at int64) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "cau-forward\n%s\n%d", host, at)
	return hex.EncodeToString(mac.Sum(nil))
}

// forwardedHeader signs host for another node.
func forwardedHeader(keys auth.Keys, host string, now time.Time) string {
	at := now.Unix()
	return host + ";" + strconv.FormatInt(at, 10) + ";" + forwardMAC(keys.Current, host, at)
}

// forwardedHost returns the client's host from a request another node forwarded, if its
// header is signed with one of the token keys and fresh.
func forwardedHost(r *http.Request, keys auth.Keys, now time.Time) (string, bool) {
	v := r.Header.Get(headerForwarded)
	if v == "" {
		return "", false
	}
	parts := strings.Split(v, ";")
	if len(parts) != 3 {
		return "", false
	}
	at, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Sub(time.Unix(at, 0)).Abs() > forwardSkew {
		return "", false
	}
	for _, k := range append([][]byte{keys.Current}, keys.Previous...) {
		if len(k) > 0 && hmac.Equal([]byte(forwardMAC(k, parts[0], at)), []byte(parts[2])) {
			return parts[0], true
		}
	}
	return "", false
}

// routeJoin runs the join here if this node owns (or now takes) the meeting, and
// otherwise forwards the session to the owner; forwarded reports the latter, and an
// error is the join's end. While the owner cannot be reached (it died, its lease has
// not expired yet) it asks again, for up to a TTL and a second, then answers a
// retryable error; a join forwarded here, or one met by a Redis error, gets it at once.
func (s *session) routeJoin(env protocol.Envelope, claims *auth.Claims) (forwarded bool, err error) {
	o := s.srv.owners
	if o == nil {
		return false, nil
	}
	m := ids.MeetingID(claims.Meeting)
	deadline := time.Now().Add(s.srv.cfg.Leases.TTL() + time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		local, addr, err := o.claim(ctx, m)
		claimErr := err != nil
		switch {
		case err != nil:
		case local:
			cancel()
			return false, nil
		case s.forwarded:
			err = errNotOwner // it was forwarded here as to the owner: never forward twice
		default:
			var up *websocket.Conn
			if up, err = s.dialOwner(ctx, addr, env); err == nil {
				cancel()
				if !s.srv.forwardStarted(s) {
					closeUpstream(up)
					return true, &closeError{code: websocket.CloseGoingAway, reason: "server shutting down"}
				}
				s.pipe(up, claims, addr)
				return true, nil
			}
		}
		cancel()
		// Only a dead owner is waited for (its lease expires). A join forwarded here, or
		// one this node cannot place because it cannot reach Redis, is answered at once:
		// the client (or the node that forwarded it) asks again, elsewhere.
		if s.forwarded || claimErr || time.Now().After(deadline) {
			s.log.Warn("join refused: the meeting's owner is unreachable", "meeting", m, "owner", addr, "err", err)
			if claimErr {
				s.reject(env.ID, protocol.CodeUnavailable, "the meeting store is unreachable; try again in a few seconds")
			} else {
				s.reject(env.ID, protocol.CodeUnavailable, "the meeting's signaling node is unreachable; try again in a few seconds")
			}
			return true, &closeError{code: websocket.CloseTryAgainLater, reason: "owner unreachable"}
		}
		time.Sleep(ownerRetry)
	}
}

// dialOwner opens a socket to the owner at base URL addr and sends it the join.
func (s *session) dialOwner(ctx context.Context, addr string, join protocol.Envelope) (*websocket.Conn, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("owner address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = "/ws"
	hdr := http.Header{headerForwarded: {forwardedHeader(s.srv.cfg.Keys, s.host, time.Now())}}
	up, resp, err := websocket.DefaultDialer.DialContext(ctx, u.String(), hdr)
	if err != nil {
		return nil, fmt.Errorf("dial owner %s: %w", u.Host, err)
	}
	_ = resp.Body.Close()
	b, err := json.Marshal(join)
	if err == nil {
		_ = up.SetWriteDeadline(time.Now().Add(writeWait))
		err = up.WriteMessage(websocket.TextMessage, b)
	}
	if err != nil {
		_ = up.Close()
		return nil, fmt.Errorf("forward join to %s: %w", u.Host, err)
	}
	return up, nil
}

// pipe makes the session (counted by forwardStarted) a forwarder: the reader goroutine (run) sends what the client
// sends to up, and a goroutine started here queues what up sends for the client.
func (s *session) pipe(up *websocket.Conn, claims *auth.Claims, owner string) {
	s.mu.Lock()
	s.claims, s.upstream = claims, up
	s.log = s.log.With("meeting", claims.Meeting, "site", claims.Site, "owner", owner)
	log := s.log
	s.mu.Unlock()
	if mt := s.srv.cfg.Metrics; mt != nil {
		mt.Forwarded.Inc()
	}
	log.Info("session forwarded to the meeting's owner")
	up.SetReadLimit(protocol.MaxMessageBytes * 4) // the owner's replies (participant lists) are larger
	_ = up.SetReadDeadline(time.Now().Add(pongWait))
	up.SetPingHandler(func(data string) error {
		_ = up.SetReadDeadline(time.Now().Add(pongWait))
		return up.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
	})
	go func() {
		for {
			_, b, err := up.ReadMessage()
			if err != nil {
				code, reason := upstreamClosed(err)
				log.Info("owner socket ended", "err", err, "code", code)
				s.close(code, reason)
				return
			}
			_ = up.SetReadDeadline(time.Now().Add(pongWait))
			s.enqueue(b)
		}
	}()
}

// upstreamClosed is the close code the client gets when the owner's socket ends: the
// owner's own code when it ended the session on purpose (left, refused, meeting ended),
// 1012 otherwise (the owner died or stopped), so that the client comes back and is
// routed to the meeting's next owner.
func upstreamClosed(err error) (int, string) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch {
		case ce.Code == websocket.CloseNormalClosure, ce.Code == websocket.CloseTryAgainLater, ce.Code >= 4000:
			return ce.Code, ce.Text
		}
	}
	return websocket.CloseServiceRestart, "signaling node lost"
}

// forwardToOwner sends one client message to the owner; false ends the session.
func (s *session) forwardToOwner(data []byte) bool {
	_ = s.upstream.SetWriteDeadline(time.Now().Add(writeWait))
	if err := s.upstream.WriteMessage(websocket.TextMessage, data); err != nil {
		s.log.Info("owner socket write", "err", err)
		s.close(websocket.CloseServiceRestart, "signaling node lost")
		return false
	}
	return true
}

// closeUpstream ends the owner's socket of a forwarded session (close calls it).
func closeUpstream(up *websocket.Conn) {
	if up == nil {
		return
	}
	_ = up.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	_ = up.Close()
}

// forwardStarted counts a forwarded session, so Close can end it; false if the server
// is closing (the session must not start).
func (s *Server) forwardStarted(f *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.forwards[f] = struct{}{}
	return true
}

// forwardEnded forgets a forwarded session (close calls it).
func (s *Server) forwardEnded(f *session) {
	s.mu.Lock()
	delete(s.forwards, f)
	s.mu.Unlock()
}
