package signaling

import (
	"net"
	"net/http"
	"sync"

	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// Default caps (Config overrides each; docs/security.md lists them with their error codes).
const (
	// DefaultMaxParticipants bounds one meeting on one signaling node: a province's
	// meeting is 100–400 endpoints.
	DefaultMaxParticipants = 1000
	// DefaultSlotsFrom: with one m-section per camera and microphone an answer holds
	// 32 publishing sites (protocol.MaxAnswerMedia); from 24 sites, room is left for
	// screen shares and for sites whose endpoints join twice.
	DefaultSlotsFrom = 24
	// DefaultMaxSocketsPerAddr bounds the open /ws sockets from one IP address. A site's
	// office behind one NAT has a few dozen devices; a reverse proxy in front of
	// signaling makes every socket come from its address, so raise it (or set -1) there.
	DefaultMaxSocketsPerAddr = 256
)

// addrLimiter counts the open sockets per remote IP address.
type addrLimiter struct {
	mu   sync.Mutex // guards open
	open map[string]int
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// acquire counts a socket from host unless it has max open already (max < 0: no cap).
func (l *addrLimiter) acquire(host string, max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max >= 0 && l.open[host] >= max {
		return false
	}
	if l.open == nil {
		l.open = map[string]int{}
	}
	l.open[host]++
	return true
}

// release uncounts a socket; an address with none open leaves the map.
func (l *addrLimiter) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

// full reports whether the meeting has max participants on this node (max < 0: no cap).
func (m *meeting) full(max int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max >= 0 && len(m.participants) >= max
}

// wantsSlots reports whether an endpoint that leaves slots to the server (Join.SlotsAuto)
// receives in them: the meeting is large (Config.SlotsFrom), by its schedule's sites
// (sched, if any) or by its participants with the one joining (a site may join with a
// room and officials' laptops).
func (m *meeting) wantsSlots(from int, sched *rooms.Meeting) bool {
	switch {
	case from < 0:
		return false
	case from == 0:
		from = DefaultSlotsFrom
	}
	if sched != nil && len(sched.Sites) >= from {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.participants)+1 >= from
}

// refuseSocket answers a socket over the address cap before upgrading it.
func refuseSocket(w http.ResponseWriter) {
	http.Error(w, protocol.CodeCapacity+": too many connections from this address", http.StatusTooManyRequests)
}
