package sfu

// Remote ICE candidates: held until their description is applied, bounded per connection.

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// AddCandidate adds a remote ICE candidate to one of the connections. Candidates that
// arrive before the description they belong to are held until it is applied.
func (p *Peer) AddCandidate(target Target, c webrtc.ICECandidateInit) error {
	if target != Publisher && target != Subscriber {
		return fmt.Errorf("add candidate: unknown target %d", target)
	}
	p.mu.Lock()
	if !p.params.Relay && p.remoteCands[target] >= MaxRemoteCandidates {
		p.mu.Unlock()
		return fmt.Errorf("%s: %w (%d)", target, ErrTooManyCandidates, MaxRemoteCandidates)
	}
	p.remoteCands[target]++
	pc := p.pcLocked(target)
	// Before the offer there is no publisher connection yet: hold its candidates as for
	// one without a remote description.
	if pc == nil || pc.RemoteDescription() == nil {
		if target == Publisher {
			p.pendingPub = append(p.pendingPub, c)
		} else {
			p.pendingSub = append(p.pendingSub, c)
		}
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("add %s candidate: %w", target, err)
	}
	return nil
}

// iceSession notes the ICE credentials of a remote description applied to target's
// connection: new ones (an ICE restart) start its candidate count again. The candidates
// held before the first description count toward that first session.
func (p *Peer) iceSession(target Target, sdp string) {
	ufrag := remoteUfrag(sdp)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remoteUfrag[target] != "" && ufrag != p.remoteUfrag[target] {
		p.remoteCands[target] = 0
	}
	p.remoteUfrag[target] = ufrag
}

// remoteUfrag is the first ice-ufrag an SDP names ("" if none).
func remoteUfrag(sdp string) string {
	const attr = "a=ice-ufrag:"
	i := strings.Index(sdp, attr)
	if i < 0 {
		return ""
	}
	rest := sdp[i+len(attr):]
	if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func (p *Peer) pc(target Target) *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pcLocked(target)
}

// pcLocked is pc for a caller holding mu.
func (p *Peer) pcLocked(target Target) *webrtc.PeerConnection {
	switch target {
	case Publisher:
		return p.pub
	case Subscriber:
		return p.sub
	}
	return nil
}

func (p *Peer) flushCandidates(target Target) {
	p.mu.Lock()
	var cands []webrtc.ICECandidateInit
	if target == Publisher {
		cands, p.pendingPub = p.pendingPub, nil
	} else {
		cands, p.pendingSub = p.pendingSub, nil
	}
	p.mu.Unlock()
	for _, c := range cands {
		if err := p.pc(target).AddICECandidate(c); err != nil {
			p.log.Debug("held candidate rejected", "target", target.String(), "err", err)
		}
	}
}
