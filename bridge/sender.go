package bridge

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The control socket's writes. A bridge used to write each message from whichever
// goroutine produced it, with a 5 s deadline, and closed the socket when one timed out;
// its pings went out beside them with a 100 ms deadline. On a loaded machine (hundreds of
// endpoints joining, signaling starved) signaling reads the socket late, TCP's buffers
// fill, a write times out, and gorilla marks the connection broken for good: signaling
// then declared a live bridge down and moved all its endpoints (issue 10's national
// meeting). Now one goroutine writes, from a queue: a slow reader is back-pressure (the
// queue grows, nothing blocks the bridge), heartbeats are coalesced to the latest one,
// and only a socket that takes writeWait to accept one frame, or a queue past
// maxQueuedBytes, ends the connection.
const (
	// writeWait is how long one frame may take to leave. Signaling pings every 15 s and
	// the bridge gives up reading after 35 s; a peer that does not take a frame in 30 s
	// is as dead as one that says nothing.
	writeWait = 30 * time.Second
	// maxQueuedBytes bounds what waits for a signaling node that does not read: past it
	// the connection ends (and is made again), rather than memory growing without end.
	maxQueuedBytes = 64 << 20
)

// sender is a control socket's only writer (run). push never blocks.
type sender struct {
	ws  *websocket.Conn
	log *slog.Logger

	mu     sync.Mutex // guards the fields below; a leaf lock
	msgs   [][]byte   // in the order pushed
	bytes  int        // queued in msgs and beat
	beat   []byte     // the latest heartbeat not yet written: a newer one replaces it
	pong   *string    // a ping's data to answer, the latest
	closed bool

	wake chan struct{} // capacity 1: something was queued
}

func newSender(ws *websocket.Conn, log *slog.Logger) *sender {
	return &sender{ws: ws, log: log, wake: make(chan struct{}, 1)}
}

// push queues one message (heartbeat: it replaces an unsent heartbeat). A queue past
// maxQueuedBytes closes the socket: the reader then fails and the bridge reconnects.
func (s *sender) push(b []byte, heartbeat bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if heartbeat {
		s.bytes += len(b) - len(s.beat)
		s.beat = b
	} else {
		s.bytes += len(b)
		s.msgs = append(s.msgs, b)
	}
	over := s.bytes > maxQueuedBytes
	if over {
		s.closed = true
	}
	s.mu.Unlock()
	if over {
		s.log.Warn("signaling reads too slowly; closing the control socket", "queued_bytes", maxQueuedBytes)
		_ = s.ws.Close()
		return
	}
	s.poke()
}

// answerPing queues a pong (the reader's ping handler calls it; it must not write).
func (s *sender) answerPing(data string) {
	s.mu.Lock()
	s.pong = &data
	s.mu.Unlock()
	s.poke()
}

func (s *sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run writes until ctx ends or a write fails (it then closes the socket, so the reader
// fails too). It pings every BeatInterval, between messages as well: a long backlog does
// not silence the bridge's liveness.
func (s *sender) run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.closed, s.msgs, s.beat = true, nil, nil
		s.mu.Unlock()
	}()
	tick := time.NewTicker(BeatInterval)
	defer tick.Stop()
	lastPing := time.Now()
	ping := func() bool {
		lastPing = time.Now()
		return s.control(websocket.PingMessage, "")
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if time.Since(lastPing) >= BeatInterval/2 && !ping() {
				return
			}
			continue
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			pong, msgs, beat := s.pong, s.msgs, s.beat
			s.pong, s.msgs, s.beat, s.bytes = nil, nil, nil, 0
			s.mu.Unlock()
			if pong == nil && msgs == nil && beat == nil {
				break
			}
			if pong != nil && !s.control(websocket.PongMessage, *pong) {
				return
			}
			if beat != nil {
				msgs = append(msgs, beat)
			}
			for _, b := range msgs {
				if time.Since(lastPing) >= BeatInterval && !ping() {
					return
				}
				if !s.write(b) {
					return
				}
			}
		}
	}
}

func (s *sender) write(b []byte) bool {
	_ = s.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := s.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		s.log.Warn("write to signaling failed; closing the control socket", "err", err)
		_ = s.ws.Close()
		return false
	}
	return true
}

func (s *sender) control(kind int, data string) bool {
	if err := s.ws.WriteControl(kind, []byte(data), time.Now().Add(writeWait)); err != nil {
		s.log.Warn("control frame to signaling failed; closing the control socket", "err", err)
		_ = s.ws.Close()
		return false
	}
	return true
}
