package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// ErrTooLarge is returned for a command larger than a bridge accepts.
var ErrTooLarge = errors.New("command too large for the control socket")

// Remote is a registered `cau bridge` process. Its methods send commands; they never
// block on the network (Offer waits for the bridge's answer, bounded by its context).
//
// Goroutines: the reader (ServeHTTP's, readLoop) delivers the bridge's messages; the
// writer (writeLoop) owns the socket's write side; the watchdog ends a silent bridge.
type Remote struct {
	conn *websocket.Conn
	id   ids.BridgeID
	site ids.SiteID
	log  *slog.Logger
	ev   bridge.Events // set before the reader starts; read-only after
	down func(*Remote, string)

	send     chan []byte   // to the writer
	pong     chan string   // capacity 1: a pong for the writer to send
	done     chan struct{} // closed by shutdown
	once     sync.Once
	timeout  time.Duration    // silence that ends the bridge; set before the reader starts
	hard     time.Duration    // silence that ends it whatever the reason (HardTimeout or more); idem
	lastSeen atomic.Int64     // unix nanos of the last message or ping, or of a handler's end
	gaps     gapWindow        // the longest silences seen lately; the reader's
	slack    atomic.Int64     // twice the longest recent silence (ns), for the watchdog
	busy     atomic.Bool      // the reader is in a handler, not reading
	replies  protocol.Replies // the commands waiting for the bridge's answer
}

// ID is the id the bridge registered with.
func (rb *Remote) ID() ids.BridgeID { return rb.id }

// Site is the site whose subtree the bridge serves.
func (rb *Remote) Site() ids.SiteID { return rb.site }

func (rb *Remote) readLoop(heartbeat func(*Remote, protocol.BridgeHeartbeat)) {
	defer rb.shutdown("connection closed")
	for {
		_ = rb.conn.SetReadDeadline(time.Now().Add(2 * rb.hard))
		_, data, err := rb.conn.ReadMessage()
		if err != nil {
			return
		}
		rb.busy.Store(true)
		rb.heard(time.Now())
		env, err := protocol.DecodeControl(data)
		if err == nil {
			err = rb.dispatch(env, heartbeat)
		}
		if err != nil {
			rb.log.Warn("bad message from bridge", "type", env.Kind, "err", err)
		}
		// Whatever came while the handler ran waits in the socket: silence counts from
		// when the reader listens again.
		rb.lastSeen.Store(time.Now().UnixNano())
		rb.busy.Store(false)
	}
}

// ping is the socket's ping handler (on the reader's goroutine): a bridge's beat. The
// pong goes through the writer (writeLoop): written here, it waited behind a long write to
// a busy bridge, and the reader heard none of the bridge's beats meanwhile.
func (rb *Remote) ping(data string) error {
	rb.heard(time.Now())
	select {
	case rb.pong <- data:
	default: // a pong is already due; one answers any number of pings
	}
	return nil
}

// dispatch delivers one message: a reply to a pending request, or an event.
func (rb *Remote) dispatch(env protocol.Envelope, heartbeat func(*Remote, protocol.BridgeHeartbeat)) error {
	if rb.replies.Deliver(env) {
		return nil
	}
	switch env.Kind {
	case protocol.KindBridgeHeartbeat:
		return decode(env, func(hb protocol.BridgeHeartbeat) {
			if heartbeat != nil {
				heartbeat(rb, hb)
			}
		})
	case protocol.KindPeerOffer:
		return decode(env, func(m protocol.PeerSDP) { rb.ev.Offer(m.Peer, m.SDP) })
	case protocol.KindPeerCandidate:
		return decode(env, func(m protocol.PeerICE) { rb.ev.Candidate(m.Peer, m.Target, m.Candidate) })
	case protocol.KindTrackPublished:
		return decode(env, func(m protocol.TrackEvent) { rb.ev.Track(m.Peer, m.Key, m.Kind) })
	case protocol.KindTrackEnded:
		return decode(env, func(m protocol.TrackEvent) { rb.ev.TrackEnded(m.Peer, m.Key) })
	case protocol.KindPeerFailed:
		return decode(env, func(m protocol.PeerFailed) { rb.ev.Failed(m.Peer, m.Reason) })
	case protocol.KindBridgeSpeaker:
		return decode(env, func(m protocol.BridgeSpeaker) {
			if rb.ev.Speaker != nil {
				rb.ev.Speaker(m.Meeting, m.Dominant, m.LastN)
			}
		})
	case protocol.KindBridgePublishLayers:
		return decode(env, func(m protocol.BridgePublishLayers) {
			if rb.ev.PublishLayers != nil {
				rb.ev.PublishLayers(m.Peer, m.Key, m.Active)
			}
		})
	case protocol.KindBridgeSlotMap:
		return decode(env, func(m protocol.BridgeSlotMap) {
			if rb.ev.Slots != nil {
				rb.ev.Slots(m.Peer, m.Slots)
			}
		})
	case protocol.KindError:
		return decode(env, func(e protocol.Error) {
			rb.log.Warn("bridge reported an error", "code", e.Code, "msg", e.Message)
		})
	}
	return fmt.Errorf("unknown message type %q", env.Kind)
}

// decode decodes env's data as a T and hands it to use; a message that does not decode
// is an error and reaches nobody.
func decode[T any](env protocol.Envelope, use func(T)) error {
	var m T
	if err := protocol.DecodeData(env, &m); err != nil {
		return err
	}
	use(m)
	return nil
}

// watchdog ends the bridge when its beats stop (a hung process or a cut link; a killed
// process is noticed sooner, when its socket closes). It ticks ten times per timeout and
// judges only on a tick that came on time while the reader was listening (see
// DefaultTimeout); HardTimeout applies on every tick. Both judge the silence signaling
// could have heard: a tick that came late counts as two intervals, not as the time this
// process was starved, and one while the reader is in a handler not at all. Otherwise a
// stall of the whole signaling process for HardTimeout
// (a 2-core machine under load, the race detector, a long GC) declared every bridge down
// at once, each of them beating (issue 10's national meeting); a hung bridge is still
// found while signaling is starved, later.
func (rb *Remote) watchdog() {
	every := rb.timeout / 10
	t := time.NewTicker(every)
	defer t.Stop()
	prev := time.Now()
	var hearable time.Duration // the silence since the bridge was last heard, late ticks capped
	for {
		select {
		case <-rb.done:
			return
		case <-t.C:
			now := time.Now() // when this goroutine runs, not when the tick was due
			gap := now.Sub(prev)
			late := gap > 2*every
			seen := time.Unix(0, rb.lastSeen.Load())
			silent := now.Sub(seen)
			switch {
			case seen.After(prev):
				hearable = silent
			case rb.busy.Load(): // the reader is in a handler: what comes waits in the socket
			default:
				hearable += min(gap, 2*every)
			}
			prev = now
			timeout := min(max(rb.timeout, time.Duration(rb.slack.Load())), rb.hard)
			switch {
			case hearable > rb.hard:
			case hearable > timeout && !late && !rb.busy.Load():
			default:
				continue
			}
			rb.log.Warn("bridge silent; declaring it down", "silent", silent.Round(time.Millisecond),
				"hearable", hearable.Round(time.Millisecond), "timeout", timeout)
			rb.shutdown("heartbeat timeout")
			return
		}
	}
}

func (rb *Remote) writeLoop() {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-rb.done:
			return
		case <-ping.C:
			if err := rb.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				rb.shutdown("ping failed")
				return
			}
		case data := <-rb.pong:
			err := rb.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
			if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
				rb.shutdown("pong failed")
				return
			}
		case b := <-rb.send:
			_ = rb.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := rb.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				rb.shutdown("write failed")
				return
			}
		}
	}
}

func (rb *Remote) shutdown(why string) {
	rb.once.Do(func() {
		close(rb.done)
		_ = rb.conn.Close()
		if rb.down != nil {
			rb.down(rb, why)
		}
	})
}

// push queues a message; a bridge that cannot keep up is cut off (its endpoints move).
func (rb *Remote) push(kind protocol.Kind, id string, data any) error {
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", rb.id, err)
	}
	if len(b) > protocol.MaxControlMessageBytes {
		// The bridge would drop its socket on it; refuse the command instead.
		return fmt.Errorf("bridge %s: %s command of %d bytes: %w", rb.id, kind, len(b), ErrTooLarge)
	}
	select {
	case <-rb.done:
		return fmt.Errorf("bridge %s: %w", rb.id, ErrClosed)
	case rb.send <- b:
		return nil
	default:
		go rb.shutdown("send queue full")
		return fmt.Errorf("bridge %s: send queue full", rb.id)
	}
}

// CreatePeer creates a peer on the bridge.
func (rb *Remote) CreatePeer(peer ids.PeerID) error {
	return rb.push(protocol.KindCreatePeer, "", protocol.PeerRef{Peer: peer})
}

// Offer applies a remote offer to a peer's publisher side and waits for the answer.
// keys names the streams the offer publishes (msid track id → key).
func (rb *Remote) Offer(ctx context.Context, peer ids.PeerID, sdp string, keys map[string]ids.StreamKey) (string, error) {
	id, ch, done := rb.replies.Expect()
	defer done()
	if err := rb.push(protocol.KindPeerSDP, id, protocol.PeerSDP{Peer: peer, Type: "offer", SDP: sdp, Keys: keys}); err != nil {
		return "", err
	}
	env, err := rb.await(ctx, ch, "offer")
	if err != nil {
		return "", err
	}
	var a protocol.Answer
	if err := protocol.DecodeData(env, &a); err != nil {
		return "", fmt.Errorf("bridge %s answer: %w", rb.id, err)
	}
	return a.SDP, nil
}

// CreatePeerWait creates a peer on the bridge and waits until the bridge has it (or
// refused it: bridge.ErrBridgeFull when it is full). A join uses it, so that a full
// bridge's refusal places the endpoint elsewhere before the endpoint negotiates;
// CreatePeer, which does not wait, serves moves, where a refusal comes back as a peer
// failure.
func (rb *Remote) CreatePeerWait(ctx context.Context, peer ids.PeerID) error {
	id, ch, done := rb.replies.Expect()
	defer done()
	if err := rb.push(protocol.KindCreatePeer, id, protocol.PeerRef{Peer: peer}); err != nil {
		return err
	}
	_, err := rb.await(ctx, ch, "create peer") // acknowledged by an empty answer
	return err
}

// await waits for the reply to a request; an error reply becomes an error
// (bridge.ErrBadSDP, bridge.ErrBridgeFull for their codes).
func (rb *Remote) await(ctx context.Context, ch <-chan protocol.Envelope, what string) (protocol.Envelope, error) {
	select {
	case env := <-ch:
		if env.Kind == protocol.KindError {
			var e protocol.Error
			_ = protocol.DecodeData(env, &e)
			switch e.Code {
			case protocol.CodeBadSDP:
				return env, fmt.Errorf("%w: %s", bridge.ErrBadSDP, e.Message)
			case protocol.CodeCapacity:
				return env, fmt.Errorf("bridge %s: %w: %s", rb.id, bridge.ErrBridgeFull, e.Message)
			case protocol.CodeUnknownPeer:
				return env, fmt.Errorf("bridge %s: %w: %s", rb.id, bridge.ErrUnknownPeer, e.Message)
			}
			return env, fmt.Errorf("bridge %s %s: %s: %s", rb.id, what, e.Code, e.Message)
		}
		return env, nil
	case <-rb.done:
		return protocol.Envelope{}, fmt.Errorf("bridge %s: %w", rb.id, ErrClosed)
	case <-ctx.Done():
		return protocol.Envelope{}, fmt.Errorf("bridge %s %s: %w", rb.id, what, ctx.Err())
	}
}

// Answer applies the remote answer to a peer's last subscriber offer.
func (rb *Remote) Answer(peer ids.PeerID, sdp string) error {
	return rb.push(protocol.KindPeerSDP, "", protocol.PeerSDP{Peer: peer, Type: "answer", SDP: sdp})
}

// AddCandidate adds a remote ICE candidate to one of a peer's connections.
func (rb *Remote) AddCandidate(peer ids.PeerID, t protocol.Target, c protocol.ICECandidate) error {
	return rb.push(protocol.KindAddICE, "", protocol.PeerICE{Peer: peer, Target: t, Candidate: c})
}

// Subscribe forwards stream key to peer as a track with the given ids; meeting is the
// stream's meeting, for its Last-N selection.
func (rb *Remote) Subscribe(peer ids.PeerID, key ids.StreamKey, trackID, streamID string, meeting ids.MeetingID) error {
	return rb.push(protocol.KindSubscribe, "", protocol.Subscription{Peer: peer, Key: key, TrackID: trackID,
		StreamID: streamID, Meeting: meeting})
}

// Unsubscribe stops forwarding key to peer.
func (rb *Remote) Unsubscribe(peer ids.PeerID, key ids.StreamKey) error {
	return rb.push(protocol.KindUnsubscribe, "", protocol.Subscription{Peer: peer, Key: key})
}

// Pin pins or unpins a participant's sources on the bridge (see protocol.BridgePin).
func (rb *Remote) Pin(p protocol.BridgePin) error {
	return rb.push(protocol.KindBridgePin, "", p)
}

// View caps the layers forwarded to a peer per stream (see protocol.BridgeView).
func (rb *Remote) View(v protocol.BridgeView) error {
	return rb.push(protocol.KindBridgeView, "", v)
}

// UseSlots makes a peer receive in slots (see protocol.BridgeSlots).
func (rb *Remote) UseSlots(s protocol.BridgeSlots) error {
	return rb.push(protocol.KindBridgeSlots, "", s)
}

// CapLayers caps the simulcast layers of a peer's video subscriptions (see
// protocol.BridgeLayerCap).
func (rb *Remote) CapLayers(c protocol.BridgeLayerCap) error {
	return rb.push(protocol.KindBridgeLayerCap, "", c)
}

// AdoptPeer takes over a peer another signaling node created on the bridge (issue 16),
// as it is, and returns what it publishes and receives; an error if the bridge has no
// such peer (bridge.ErrUnknownPeer).
func (rb *Remote) AdoptPeer(ctx context.Context, peer ids.PeerID) (protocol.PeerState, error) {
	id, ch, done := rb.replies.Expect()
	defer done()
	if err := rb.push(protocol.KindAdoptPeer, id, protocol.PeerRef{Peer: peer}); err != nil {
		return protocol.PeerState{}, err
	}
	env, err := rb.await(ctx, ch, "adopt peer")
	if err != nil {
		return protocol.PeerState{}, err
	}
	var st protocol.PeerState
	if err := protocol.DecodeData(env, &st); err != nil {
		return st, fmt.Errorf("bridge %s adopt: %w", rb.id, err)
	}
	return st, nil
}

// ReleasePeer gives a peer up without closing it: it forwards on for the bridge's grace,
// for the node that takes its meeting over to adopt.
func (rb *Remote) ReleasePeer(peer ids.PeerID) error {
	return rb.push(protocol.KindReleasePeer, "", protocol.PeerRef{Peer: peer})
}

// ClosePeer closes a peer on the bridge.
func (rb *Remote) ClosePeer(peer ids.PeerID) error {
	return rb.push(protocol.KindClosePeer, "", protocol.PeerRef{Peer: peer})
}

// heard records that something came from the bridge at now (on the reader's goroutine):
// the silence since the last thing heard joins the recent gaps, and the watchdog's slack
// becomes twice the longest of them. A bridge behind a lossy link, whose TCP stalls for
// a retransmission now and then, so gets a longer timeout than one on a clean link, and
// is not declared down for the stalls it has shown; a hung one goes silent for good,
// and HardTimeout bounds the wait.
func (rb *Remote) heard(now time.Time) {
	prev := rb.lastSeen.Swap(now.UnixNano())
	if longest := rb.gaps.add(now, now.Sub(time.Unix(0, prev))); longest > 0 {
		rb.slack.Store(int64(2 * longest))
	}
}

// gapWindow keeps the longest gap of the current and the previous gapSpan: the gaps of
// the last one to two spans. Owned by the reader goroutine.
type gapWindow struct {
	start     time.Time
	cur, prev time.Duration
}

// gapSpan is how long a stall is remembered (one to two spans).
const gapSpan = 30 * time.Second

// add records a gap at now and returns the longest recent one.
func (w *gapWindow) add(now time.Time, gap time.Duration) time.Duration {
	if now.Sub(w.start) > gapSpan {
		w.start, w.prev, w.cur = now, w.cur, 0
	}
	w.cur = max(w.cur, gap)
	return max(w.cur, w.prev)
}
