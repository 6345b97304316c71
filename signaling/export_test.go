package signaling

import (
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
