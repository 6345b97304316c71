package sipgw

import (
	"fmt"
	"strconv"
	"strings"
)

// What a room can decode of H.264 (RFC 6184 §8.1): its profile and level
// (profile-level-id), the frame size and macroblock rate it states beyond its level
// (max-fs, max-mbps), and the bit rate it takes (max-br, and the SDP's b=TIAS or b=AS).
// The gateway forwards video without transcoding, so it can only choose which simulcast
// layer of the meeting's video the room is sent: the highest whose picture and rate fit
// (layerFor), capped at the bridge (signaling.Attached.SetMaxVideoLayer).

// h264Caps is the decoding capability a room's description states for H.264. A zero
// field means the room did not say (the level's limit then applies).
type h264Caps struct {
	// Profile and Constraints are profile_idc and the constraint flags byte of
	// profile-level-id; Level its level_idc (9 stands for level 1b).
	Profile, Constraints, Level uint8
	// MaxFS is the largest frame in macroblocks, MaxMBPS the macroblocks a second
	// (max-fs, max-mbps).
	MaxFS, MaxMBPS int
	// MaxBitrate is the bit rate the room takes, in bit/s: the least of max-br and the
	// video m-line's b=TIAS or b=AS (else the session's).
	MaxBitrate int
}

// h264Level is one row of H.264's Table A-1.
type h264Level struct {
	MaxMBPS, MaxFS int
	MaxBR          int // kbit/s, Baseline and Main (VCL bit rate × 1200 / 1000 for High)
}

// h264Levels is Table A-1 by level_idc (9: level 1b).
var h264Levels = map[uint8]h264Level{
	9: {1485, 99, 128}, 10: {1485, 99, 64}, 11: {3000, 396, 192}, 12: {6000, 396, 384}, 13: {11880, 396, 768},
	20: {11880, 396, 2000}, 21: {19800, 792, 4000}, 22: {20250, 1620, 4000},
	30: {40500, 1620, 10000}, 31: {108000, 3600, 14000}, 32: {216000, 5120, 20000},
	40: {245760, 8192, 20000}, 41: {245760, 8192, 50000}, 42: {522240, 8704, 50000},
	50: {589824, 22080, 135000}, 51: {983040, 36864, 240000}, 52: {2073600, 36864, 240000},
}

// defaultLevel is the level assumed when profile-level-id is absent: RFC 6184 §8.1 says
// Baseline level 1 then, but every room codec that leaves it out decodes far more, and
// the meeting's browsers send Constrained Baseline 3.1 (h264Fmtp).
const defaultLevel = 31

// parseH264Fmtp reads an H.264 fmtp line's parameters into c. It never fails: a
// parameter it cannot read is ignored (the level's limits apply), as a lenient receiver
// does with an unknown one.
func parseH264Fmtp(fmtp string, c *h264Caps) {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "profile-level-id":
			if p, cons, lvl, ok := parseProfileLevelID(v); ok {
				c.Profile, c.Constraints, c.Level = p, cons, lvl
			}
		case "max-fs":
			c.MaxFS = positive(v, 1<<20)
		case "max-mbps":
			c.MaxMBPS = positive(v, 1<<26)
		case "max-br":
			if br := positive(v, 1<<22); br > 0 {
				c.MaxBitrate = minPositive(c.MaxBitrate, br*1000)
			}
		}
	}
}

// parseProfileLevelID reads profile-level-id: six hex digits, profile_idc, the constraint
// flags and level_idc. Level 1b (RFC 6184 §8.1: level_idc 11 with constraint_set3 in the
// Baseline profiles) is returned as 9.
func parseProfileLevelID(s string) (profile, constraints, level uint8, ok bool) {
	if len(s) != 6 {
		return 0, 0, 0, false
	}
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, 0, 0, false
	}
	profile, constraints, level = uint8(n>>16), uint8(n>>8), uint8(n)
	if level == 11 && constraints&0x10 != 0 && (profile == 0x42 || profile == 0x4d || profile == 0x58) {
		level = 9
	}
	return profile, constraints, level, true
}

// positive reads a decimal in 1..limit, else 0.
func positive(s string, limit int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > limit {
		return 0
	}
	return n
}

// minPositive is the lesser of two rates where 0 means none.
func minPositive(a, b int) int {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// parseBandwidth reads an SDP b= line's value ("AS:384", "TIAS:384000") as bit/s, 0 for
// one it does not use (CT, RR, RS, or malformed).
func parseBandwidth(typ string, value int) int {
	switch strings.ToUpper(typ) {
	case "AS":
		if value > 0 && value <= 1<<22 {
			return value * 1000
		}
	case "TIAS":
		if value > 0 && value <= 1<<32 {
			return value
		}
	}
	return 0
}

// level is the caps' level row (the default level's when absent or unknown).
func (c h264Caps) level() h264Level {
	if l, ok := h264Levels[c.Level]; ok {
		return l
	}
	return h264Levels[defaultLevel]
}

// frameLimit is the largest frame the room decodes, in macroblocks: max-fs where stated,
// else its level's MaxFS. max-fs may only raise the level's (RFC 6184), but a room that
// states a smaller one means it: the gateway takes the stated figure as it is.
func (c h264Caps) frameLimit() int {
	if c.MaxFS > 0 {
		return c.MaxFS
	}
	return c.level().MaxFS
}

// rateLimit is the macroblocks a second the room decodes (max-mbps, else its level's).
func (c h264Caps) rateLimit() int {
	if c.MaxMBPS > 0 {
		return c.MaxMBPS
	}
	return c.level().MaxMBPS
}

// bitrateLimit is the bit rate the room takes: b=TIAS or b=AS or max-br where stated,
// else its level's MaxBR.
func (c h264Caps) bitrateLimit() int {
	if c.MaxBitrate > 0 {
		return c.MaxBitrate
	}
	return c.level().MaxBR * 1000
}

// answerProfileLevelID is the profile-level-id the gateway answers a room with. RFC 6184
// §8.2.2 wants the offer's profile echoed: Constrained Baseline for a room that offers a
// Baseline profile or none (what the meeting's browsers send, and what every decoder of
// any profile takes), else the room's own profile; at the lesser of the room's level and
// 3.1, the level the gateway itself takes.
func (c h264Caps) answerProfileLevelID() string {
	lvl := uint8(defaultLevel)
	if c.Level != 0 && c.Level < lvl {
		lvl = c.Level
	}
	profile, constraints := uint8(0x42), uint8(0xe0)
	if c.Profile != 0 && c.Profile != 0x42 {
		profile, constraints = c.Profile, c.Constraints
	}
	if lvl == 9 && (profile == 0x42 || profile == 0x4d || profile == 0x58) {
		lvl, constraints = 11, constraints|0x10 // level 1b in these profiles (RFC 6184 §8.1)
	}
	return fmt.Sprintf("%02x%02x%02x", profile, constraints, lvl)
}

// videoLayer is one simulcast layer the meeting's browsers publish (web/static
// media-link.js CAMERA_LAYERS from a 1280×720 camera at 30 frames a second), low first.
type videoLayer struct {
	Width, Height, FPS int
	Bitrate            int // bit/s, the layer's ceiling
}

// cameraLayers are the layers of a browser's camera: 180p, 360p and 720p.
var cameraLayers = []videoLayer{
	{320, 180, 30, 150_000},
	{640, 360, 30, 500_000},
	{1280, 720, 30, 1_200_000},
}

// macroblocks is a frame's size in 16×16 macroblocks.
func macroblocks(w, h int) int { return ((w + 15) / 16) * ((h + 15) / 16) }

// layerFor is the highest of layers whose frame size, macroblock rate and bit rate the
// room decodes; the lowest when none fits (the room gets the smallest picture there is,
// rather than none).
func layerFor(c h264Caps, layers []videoLayer) int {
	best := 0
	for i, l := range layers {
		mbs := macroblocks(l.Width, l.Height)
		if mbs <= c.frameLimit() && mbs*l.FPS <= c.rateLimit() && l.Bitrate <= c.bitrateLimit() {
			best = i
		}
	}
	return best
}
