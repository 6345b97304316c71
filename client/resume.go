package client

// Coming back through another signaling node (issue 16): with Options.ResumeURLs, a
// socket lost while the meeting goes on (the node died, stopped, or gave the meeting to
// another node) is replaced by a new one to the next URL, which joins again with the same
// token and the resume token of the last joined. When the server adopts the media
// connections as they are (Joined.Resumed) nothing else happens: same participant id,
// same connections, media never stopped. Otherwise the connections are renewed as after
// a reconnect message, the old ones kept until the new ones carry media.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/protocol"
)

const (
	// resumeFor bounds how long the client tries to come back before it gives up.
	resumeFor = 30 * time.Second
	// resumeBackoff is the first pause between attempts; it doubles up to a second.
	resumeBackoff = 100 * time.Millisecond
)

// socketEnded handles the end of conn's read loop: the client resumes on another node
// when it may, and otherwise closes.
func (c *Client) socketEnded(conn *websocket.Conn, err error) {
	c.writeMu.Lock()
	current := conn == c.conn
	start := current && len(c.resumeURLs) > 0 && c.established && !c.resuming && resumable(err)
	if start {
		c.resuming = true
	}
	resuming := c.resuming
	c.writeMu.Unlock()
	switch {
	case start:
		go c.resume(err)
	case current && !resuming:
		c.shutdown(err)
	}
}

// resumable says whether a socket's end leaves the meeting going on: not the server's
// final word (1000 after a leave, 4xxx: refused, replaced, meeting ended) nor the
// client's own close.
func resumable(err error) bool {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code != websocket.CloseNormalClosure && ce.Code < 4000
	}
	return true
}

// resume dials the next URL and joins again until it succeeds, the client is closed, or
// resumeFor has passed.
func (c *Client) resume(cause error) {
	c.reconnectMu.Lock()
	defer c.reconnectMu.Unlock()
	c.log.Info("signaling socket lost; resuming on another node", "err", cause)
	deadline := time.Now().Add(resumeFor)
	backoff := resumeBackoff
	for {
		select {
		case <-c.closed:
			return
		default:
		}
		c.mu.Lock()
		url := c.resumeURLs[c.nextURL%len(c.resumeURLs)]
		c.nextURL++
		c.mu.Unlock()
		resumed, err := c.rejoin(url)
		if err == nil {
			c.writeMu.Lock()
			c.resuming = false
			c.writeMu.Unlock()
			c.mu.Lock()
			c.resumes++
			if resumed {
				c.adoptions++
			}
			c.mu.Unlock()
			if !resumed {
				c.republish()
			}
			c.log.Info("resumed", "url", url, "media_kept", resumed)
			return
		}
		c.log.Info("resume attempt failed", "url", url, "err", err)
		if time.Now().After(deadline) {
			c.writeMu.Lock()
			c.resuming = false
			c.writeMu.Unlock()
			c.shutdown(fmt.Errorf("resume: %w (socket lost: %w)", err, cause))
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// rejoin opens a socket to url and joins with the resume token; resumed says the server
// kept the media connections. If it did not, joinedAgain renewed them (on the read
// goroutine, before the server's subscriber offer that may follow joined).
func (c *Client) rejoin(url string) (resumed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", url, err)
	}
	_ = resp.Body.Close()
	join := c.join
	c.mu.Lock()
	join.Resume = c.resumeToken
	c.renewOnJoin = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.renewOnJoin = false
		c.mu.Unlock()
	}()
	c.writeMu.Lock()
	old := c.conn
	c.conn = conn
	c.writeMu.Unlock()
	_ = old.Close()
	go c.readLoop(conn)
	j, err := c.joinMeeting(ctx, join)
	if err != nil {
		_ = conn.Close()
		return false, err
	}
	return j.Resumed, nil
}

// joinedAgain runs on the read goroutine when joined arrives: after a resume's join the
// server either kept the media connections, or expects new ones (it may send its
// subscriber offer next), which are made here, the old ones kept open until the new ones
// carry media: the bridges keep forwarding for a while after signaling is lost.
func (c *Client) joinedAgain(j protocol.Joined) {
	c.mu.Lock()
	renew := c.renewOnJoin && !j.Resumed
	c.renewOnJoin = false
	c.mu.Unlock()
	if !renew {
		return
	}
	oldPub, oldSub := c.peers()
	oldStreams := c.liveStreams()
	c.mu.Lock()
	c.streams = map[string]*Stream{}
	c.pendingICE = nil
	c.mu.Unlock()
	if err := c.newPeers(); err != nil {
		c.log.Error("resume: new connections", "err", err)
		_ = oldPub.Close()
		_ = oldSub.Close()
		return
	}
	go c.closeWhenReplaced(oldPub, oldSub, oldStreams)
}

// Adoptions counts the resumes in which the server kept the media connections.
func (c *Client) Adoptions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.adoptions
}

// Resumes counts the times the client came back on a new signaling socket.
func (c *Client) Resumes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resumes
}

// Me is this endpoint as the server last announced it: Self, read safely while the
// client may resume (a resumed session has a new participant id and stream ids).
func (c *Client) Me() protocol.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Self
}

// liveStreams counts the received streams that carried packets.
func (c *Client) liveStreams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.streams {
		if s.Packets.Load() > 0 {
			n++
		}
	}
	return n
}

// overlapFor bounds how long old connections stay open beside their replacements.
const overlapFor = 5 * time.Second

// closeWhenReplaced closes the connections a resume replaced once the new ones receive
// as many streams as they did (or after overlapFor): make before break.
func (c *Client) closeWhenReplaced(pub, sub *webrtc.PeerConnection, streams int) {
	deadline := time.Now().Add(overlapFor)
	for time.Now().Before(deadline) && c.liveStreams() < streams {
		select {
		case <-c.closed:
			deadline = time.Now()
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = pub.Close()
	_ = sub.Close()
}
