package sfu

import "sync"

// packetCacheSize is how many of a published video track's latest packets are kept for
// retransmission: 512 hold 1–2.5 s of 1–2 Mbps video, several NACK round trips on a
// lossy commune link. One cache per published track, shared by all its subscribers
// (Galene's packetcache), instead of a copy per subscriber: 0.75 MB per track rather
// than per subscription.
const packetCacheSize = 512

// maxCachedPayload bounds a cached payload (an RTP payload that fits an Ethernet MTU).
const maxCachedPayload = 1500 - 12

type cacheEntry struct {
	seq    uint16
	valid  bool
	marker bool
	ts     uint32
	n      int
	buf    [maxCachedPayload]byte
}

// packetCache holds the publisher's packets as received (payload, sequence number,
// timestamp, marker), indexed by sequence number. The up track's reader stores; the
// subscribers' RTCP goroutines read, each rewriting for its own subscriber.
type packetCache struct {
	mu      sync.Mutex // guards entries: one store per received packet, one get per NACKed one
	entries []cacheEntry
	mask    uint16
}

// newPacketCache makes a cache of size packets, rounded up to a power of two (at most
// 32768).
func newPacketCache(size int) *packetCache {
	n := 1
	for n < size && n < 1<<15 {
		n <<= 1
	}
	return &packetCache{entries: make([]cacheEntry, n), mask: uint16(n - 1)}
}

// store copies one packet in; a payload too large to cache is forgotten.
func (c *packetCache) store(seq uint16, ts uint32, marker bool, payload []byte) {
	c.mu.Lock()
	e := &c.entries[seq&c.mask]
	if len(payload) > len(e.buf) {
		e.valid = false
	} else {
		e.seq, e.ts, e.marker, e.valid = seq, ts, marker, true
		e.n = copy(e.buf[:], payload)
	}
	c.mu.Unlock()
}

// get copies packet seq's payload into dst and returns its length, timestamp and
// marker; ok is false if it is no longer cached (or dst is too small).
func (c *packetCache) get(seq uint16, dst []byte) (n int, ts uint32, marker, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &c.entries[seq&c.mask]
	if !e.valid || e.seq != seq || len(dst) < e.n {
		return 0, 0, false, false
	}
	return copy(dst, e.buf[:e.n]), e.ts, e.marker, true
}
