// Package retransmit answers NACKs for what a peer connection sends, without allocating
// per packet: every sent packet is copied once into a preallocated ring (as Galene's
// packetcache does), and a NACKed one is sent again from there — as RTX when the stream
// negotiated it (RFC 4588), else as the original packet.
package retransmit

import (
	"github.com/pion/rtp"
)

// maxPacket bounds a cached packet: header and payload as sent, before SRTP.
const maxPacket = 1500

type entry struct {
	seq   uint16
	n     int
	valid bool
	buf   [maxPacket]byte
}

// cache holds the last len(entries) packets of one stream, indexed by sequence number.
// The caller serialises access.
type cache struct {
	entries []entry
	mask    uint16
}

// newCache makes a cache of size packets, rounded up to a power of two (at most 32768).
func newCache(size int) *cache {
	n := 1
	for n < size && n < 1<<15 {
		n <<= 1
	}
	return &cache{entries: make([]entry, n), mask: uint16(n - 1)}
}

// store copies a packet in. A packet too large to cache is skipped (it cannot be
// retransmitted; it could not be sent over UDP in one piece either).
func (c *cache) store(h *rtp.Header, payload []byte) {
	e := &c.entries[h.SequenceNumber&c.mask]
	size := h.MarshalSize() + len(payload)
	if size > maxPacket {
		e.valid = false
		return
	}
	n, err := h.MarshalTo(e.buf[:])
	if err != nil {
		e.valid = false
		return
	}
	n += copy(e.buf[n:], payload)
	e.seq, e.n, e.valid = h.SequenceNumber, n, true
}

// get returns the cached bytes of packet seq, or nil if it has been overwritten.
func (c *cache) get(seq uint16) []byte {
	e := &c.entries[seq&c.mask]
	if !e.valid || e.seq != seq {
		return nil
	}
	return e.buf[:e.n]
}
