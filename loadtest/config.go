// Package loadtest drives simulated endpoints against a Cầu server and measures what a
// meeting would feel like: join times, loss, jitter and end-to-end latency on every
// received stream, and the server's CPU per forwarded packet and memory per endpoint from
// its /metrics. It speaks only the public protocol, through package client, so it can be
// pointed at any deployment; `cau loadtest` is its command line.
package loadtest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cau-project/cau/protocol"
)

// Modes of publishing.
const (
	// ModeFixed keeps the first Publishers endpoints publishing for the whole run.
	ModeFixed = "fixed"
	// ModeRotate keeps the chair publishing and moves the other publishing slots round
	// robin over the sites every RotateEvery, as sites take the floor in turn.
	ModeRotate = "rotate"
)

// Media a publisher sends.
const (
	MediaBoth  = "av"    // camera and microphone
	MediaVideo = "video" // camera only
	MediaAudio = "audio" // microphone only
)

// Config describes one load-test run.
type Config struct {
	// URL is the server's base URL (http://host:port); /ws and /metrics are found under it.
	URL string
	// Token is an operator's (role admin) API token: the tester asks the API for each
	// endpoint's join token with it (POST /api/v1/meetings/{id}/join-token), so it never
	// needs the server's signing key.
	Token string
	// Meeting is the meeting every endpoint joins.
	Meeting string
	// Endpoints is how many simulated endpoints join.
	Endpoints int
	// Sites are spread over the endpoints, one per site first, in order (the first site
	// is the chair's). Nil means synthetic sites.
	Sites []Site
	// Publishers is how many endpoints publish at a time; the first is the chair.
	Publishers int
	// Media is what publishers send: MediaBoth, MediaVideo or MediaAudio.
	Media string
	// VideoKbps and FPS shape the synthetic video.
	VideoKbps, FPS int
	// Simulcast makes publishers send their video in three layers (quarter, half and the
	// full VideoKbps), as the join page does; the report counts the layers received.
	Simulcast bool
	// Talkers is how many publishers (the second on: never the chair) talk, in turns of
	// TalkEvery, one at a time; the other publishers send silence. With Talkers every
	// publisher sends audio levels (RFC 6464) and the report gets a Last-N section
	// (lastn.go) comparing what each subscriber received with what it should.
	Talkers   int
	TalkEvery time.Duration
	// ViewTiles makes every endpoint send a view: the publishers in order, the first in a
	// large tile, the next ViewTiles−1 in small ones, the rest hidden (0: no view). The
	// report then counts the layer each tile received.
	ViewTiles int
	// Slots makes every endpoint receive in slots (protocol.Join.Slots): a bounded set of
	// tracks negotiated once, whatever the number of publishers. What each receives of a
	// publisher is counted by the slot map (client.Client.Slots).
	Slots bool
	// VideoN and AudioN are the server's Last-N (its speaker configuration; the defaults
	// are the server's: 9 videos, 3 audios), which the Last-N section checks against.
	VideoN, AudioN int
	// Duration is how long full load is held and measured, after every join has settled.
	Duration time.Duration
	// Ramp is the join rate, in endpoints per second.
	Ramp float64
	// Mode is ModeFixed or ModeRotate; RotateEvery is the floor's period in rotate mode.
	Mode        string
	RotateEvery time.Duration
	// JoinTimeout bounds token → first media packet; an endpoint slower than this failed.
	JoinTimeout time.Duration
	// Thresholds make Run's report fail.
	Thresholds Thresholds
	// Progress receives the progress display (nil: none). Live redraws one line every
	// second (a terminal); otherwise a line is written every ProgressEvery.
	Progress      io.Writer
	Live          bool
	ProgressEvery time.Duration
	// Logger receives the tester's own logs; the clients log at Warn and above through it.
	Logger *slog.Logger
}

// Thresholds are the limits a run must stay within.
type Thresholds struct {
	// MaxLossPct is the highest acceptable packet loss over all received streams, in
	// percent; negative disables the check.
	MaxLossPct float64 `json:"max_loss_pct"`
	// MaxFailedJoins is the number of endpoints allowed to fail to join; negative
	// disables the check.
	MaxFailedJoins int `json:"max_failed_joins"`
	// MaxJoinP95 is the highest acceptable 95th percentile of join time; 0 disables it.
	MaxJoinP95 time.Duration `json:"-"`
	// MaxLastNMissPct is the highest acceptable share of Last-N samples with a stream
	// over- or under-delivered, in percent; negative disables the check.
	MaxLastNMissPct float64 `json:"max_lastn_miss_pct"`
}

// DefaultConfig is the Gia Lai meeting: 258 endpoints, chair and one speaker publishing
// 720p30-like video at 1 Mbps plus audio, joining at 20 per second, held for a minute.
func DefaultConfig() Config {
	return Config{
		URL: "http://127.0.0.1:7880", Meeting: "loadtest", Endpoints: 258, Publishers: 2,
		Media: MediaBoth, VideoKbps: 1000, FPS: 30, Duration: time.Minute, Ramp: 20,
		Mode: ModeFixed, RotateEvery: 10 * time.Second, JoinTimeout: 10 * time.Second,
		TalkEvery: 2 * time.Second, VideoN: 9, AudioN: 3,
		Thresholds:    Thresholds{MaxLossPct: 1, MaxFailedJoins: 0, MaxJoinP95: time.Second, MaxLastNMissPct: 5},
		ProgressEvery: 5 * time.Second,
	}
}

// ParseRate reads a rate such as "20/s", "300/m" or "20" (per second).
func ParseRate(s string) (float64, error) {
	num, unit, hasUnit := strings.Cut(strings.TrimSpace(s), "/")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: want a positive number such as 20/s", s)
	}
	if !hasUnit {
		return v, nil
	}
	switch strings.TrimSpace(unit) {
	case "s", "sec":
		return v, nil
	case "m", "min":
		return v / 60, nil
	}
	return 0, fmt.Errorf("rate %q: unit must be /s or /m", s)
}

// validate checks c and fills defaults.
func (c *Config) validate() error {
	var errs []error
	if _, _, err := serverURLs(c.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Token == "" {
		errs = append(errs, errors.New("no API token: give an operator's (role admin) token"))
	}
	if c.Meeting == "" {
		errs = append(errs, errors.New("meeting is empty"))
	}
	if c.Endpoints < 1 {
		errs = append(errs, fmt.Errorf("endpoints %d: want at least 1", c.Endpoints))
	}
	if c.Publishers < 0 || c.Publishers > c.Endpoints {
		errs = append(errs, fmt.Errorf("publishers %d: want 0 to endpoints (%d)", c.Publishers, c.Endpoints))
	}
	switch c.Media {
	case "":
		c.Media = MediaBoth
	case MediaBoth, MediaVideo, MediaAudio:
	default:
		errs = append(errs, fmt.Errorf("media %q: want av, video or audio", c.Media))
	}
	if c.FPS <= 0 || c.FPS > 60 {
		errs = append(errs, fmt.Errorf("fps %d: want 1 to 60", c.FPS))
	}
	if c.VideoKbps <= 0 || c.VideoKbps > 20000 {
		errs = append(errs, fmt.Errorf("video bitrate %d kbps: want 1 to 20000", c.VideoKbps))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("duration must be positive"))
	}
	if c.Ramp <= 0 {
		errs = append(errs, errors.New("ramp must be positive"))
	}
	switch c.Mode {
	case "":
		c.Mode = ModeFixed
	case ModeFixed:
	case ModeRotate:
		if c.Publishers < 2 {
			errs = append(errs, errors.New("rotate mode needs at least 2 publishers (the chair and a floor)"))
		}
		if c.RotateEvery <= 0 {
			errs = append(errs, errors.New("rotate period must be positive"))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q: want fixed or rotate", c.Mode))
	}
	errs = append(errs, c.validateLastN()...)
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 10 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Sites) == 0 && c.Endpoints > 0 {
		c.Sites = syntheticSites(c.Endpoints)
	}
	return errors.Join(errs...)
}

// videoShape turns a bitrate and frame rate into packets per frame and payload size
// (at most 1100 bytes, so packets stay under a 1200-byte MTU with SRTP overhead).
func videoShape(kbps, fps int) (packetsPerFrame, payloadBytes int) {
	perFrame := kbps * 1000 / 8 / fps
	packetsPerFrame = max(1, (perFrame+1099)/1100)
	payloadBytes = max(64, perFrame/packetsPerFrame)
	return min(packetsPerFrame, 255), payloadBytes
}

// serverURLs derives the WebSocket and metrics URLs from the base URL.
func serverURLs(base string) (ws, metrics string, err error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("server url %q: want http://host:port", base)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", "", fmt.Errorf("server url %q: scheme must be http or https", base)
	}
	path := strings.TrimSuffix(u.Path, "/")
	u.Path = path + "/ws"
	ws = u.String()
	m := *u
	m.Scheme = strings.Replace(strings.Replace(u.Scheme, "wss", "https", 1), "ws", "http", 1)
	m.Path = path + "/metrics"
	return ws, m.String(), nil
}

// isLoopback reports whether the server is on this host's loopback, so ICE can be kept
// to 127.0.0.1.
func isLoopback(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	h := u.Hostname()
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}

// validateLastN checks the Last-N settings and fills their defaults.
func (c *Config) validateLastN() []error {
	var errs []error
	if c.VideoN <= 0 {
		c.VideoN = 9
	}
	if c.AudioN <= 0 {
		c.AudioN = 3
	}
	if c.TalkEvery <= 0 {
		c.TalkEvery = 2 * time.Second
	}
	if c.Talkers < 0 || (c.Talkers > 0 && c.Talkers > c.Publishers-1) {
		errs = append(errs, fmt.Errorf("talkers %d: want 0 to publishers − 1 (%d; the chair does not talk)", c.Talkers, c.Publishers-1))
	}
	if c.Talkers > 0 && c.Media == MediaVideo {
		errs = append(errs, errors.New("talkers need audio: media av or audio"))
	}
	if c.Talkers > 0 && c.Mode == ModeRotate {
		errs = append(errs, errors.New("talkers and rotate mode do not go together: the talkers are the fixed publishers"))
	}
	if c.TalkEvery < 500*time.Millisecond {
		errs = append(errs, fmt.Errorf("talk turn %v: want at least 500ms (the server needs a few ticks to follow)", c.TalkEvery))
	}
	if c.ViewTiles < 0 || c.ViewTiles > protocol.MaxViewTiles {
		errs = append(errs, fmt.Errorf("view tiles %d: want 0 to %d", c.ViewTiles, protocol.MaxViewTiles))
	}
	return errs
}
