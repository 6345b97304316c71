package signaling

import "time"

// ForgetIdleTokensAfter shortens how long the token caps remember a token nobody uses
// (a minute), so a test can watch them forget it.
func (s *Server) ForgetIdleTokensAfter(d time.Duration) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	s.tokens.idle = d
}

// TokensTracked sweeps the token caps and says how many tokens they remember.
func (s *Server) TokensTracked() int { return s.tokens.tracked(time.Now()) }
