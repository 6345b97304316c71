package signaling

import (
	"context"
	"sync"
	"time"

	"github.com/cau-project/cau/ids"
)

// ForgetIdleTokensAfter shortens how long the token caps remember a token nobody uses
// (a minute), so a test can watch them forget it.
func (s *Server) ForgetIdleTokensAfter(d time.Duration) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	s.tokens.idle = d
}

// TokensTracked sweeps the token caps and says how many tokens they remember.
func (s *Server) TokensTracked() int { return s.tokens.tracked(time.Now()) }

// OwnsMeeting says whether this node holds the meeting's lease and acts as its owner.
func (s *Server) OwnsMeeting(meeting string) bool {
	if s.owners == nil {
		return false
	}
	s.owners.mu.Lock()
	defer s.owners.mu.Unlock()
	return s.owners.held[ids.MeetingID(meeting)] != nil
}

// HoldWrites makes the meeting's store writes wait until release is called: a write
// queued meanwhile is made after, as one queued before a lease was lost and made once
// another node has taken it. False if the meeting is not live here.
func (s *Server) HoldWrites(meeting string) (release func(), ok bool) {
	s.mu.Lock()
	m := s.meetings[ids.MeetingID(meeting)]
	s.mu.Unlock()
	if m == nil {
		return nil, false
	}
	ch := make(chan struct{})
	m.writes.push(func(context.Context) error { <-ch; return nil }, func(func(context.Context) error) {})
	return sync.OnceFunc(func() { close(ch) }), true
}
