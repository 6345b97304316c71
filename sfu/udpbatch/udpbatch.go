// Package udpbatch sends a UDP socket's datagrams in batches: one sendmmsg system call
// (golang.org/x/net/ipv4 PacketConn.WriteBatch) carries many datagrams, where a plain
// net.UDPConn makes one sendto each.
//
// The bridge forwards each incoming packet to every subscriber, and pion's write path
// ends in one WriteTo per subscriber on the ICE UDP mux's socket. A Conn sits under that
// mux in place of the *net.UDPConn: while some fan-out holds the Group (Hold … Release),
// WriteTo copies the datagram into a preallocated batch and returns; the batches go out
// on a flusher goroutine per shard. So the forwarding goroutine does the user-space work
// (rewrite, interceptors, SRTP) and the flushers do the kernel's, on other cores.
//
// Datagrams to one destination always take the same shard, and a shard sends its
// batches in order, so a subscriber receives its packets in the order they were written.
// A write while nobody holds the group and nothing is queued on its shard goes straight
// to the socket, as before (STUN, DTLS, RTCP outside a fan-out).
//
// UDP GSO is not used: it splits one buffer into segments for a single destination, and
// a fan-out sends one datagram to each of many destinations.
package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
)

// BatchSize is the most datagrams one system call carries.
const BatchSize = 64

// slotSize bounds a datagram copied into a batch; larger ones (rare: pion's packets fit
// an Ethernet MTU) are copied into a buffer of their own.
const slotSize = 1500

// maxBatches bounds the batches of one shard, filling or in flight. A writer that finds
// none free waits for the flusher: the kernel's pace is the back-pressure.
const maxBatches = 8

// Group batches the writes of its Conns while it is held. The zero value is ready; a nil
// *Group is valid and never batches.
type Group struct {
	holds atomic.Int32 // fan-outs in progress

	mu    sync.Mutex              // serialises changes to conns (New, Close)
	conns atomic.Pointer[[]*Conn] // copy-on-write snapshot read by Release without a lock
}

// Hold starts a fan-out: writes on the group's Conns are queued until Release. Hold and
// Release nest and may be called from any goroutine.
func (g *Group) Hold() {
	if g != nil {
		g.holds.Add(1)
	}
}

// Release ends a fan-out started by Hold and hands every queued datagram to the
// flushers: it never waits for the kernel unless all of a shard's batches are in flight.
func (g *Group) Release() {
	if g == nil {
		return
	}
	g.holds.Add(-1)
	if conns := g.conns.Load(); conns != nil {
		for _, c := range *conns {
			c.handoffAll()
		}
	}
}

// Trim frees the batches of the group's Conns that wait unused, keeping the one each
// shard fills next: a fan-out of a large meeting grows a shard to maxBatches (about
// 110 KB each), and nothing else gives them back once the meeting has ended (issue 11).
// The next burst allocates again as it needs. Any goroutine; batches in flight stay.
func (g *Group) Trim() (freed int) {
	if g == nil {
		return 0
	}
	if conns := g.conns.Load(); conns != nil {
		for _, c := range *conns {
			freed += c.trim()
		}
	}
	return freed
}

// Batches is how many batches the group's Conns hold now (filling, queued, in flight or
// free).
func (g *Group) Batches() (n int) {
	if conns := g.conns.Load(); conns != nil {
		for _, c := range *conns {
			for i := range c.shards {
				s := &c.shards[i]
				s.mu.Lock()
				n += s.allocated
				s.mu.Unlock()
			}
		}
	}
	return n
}

// Stats sums the counters of the group's open Conns.
func (g *Group) Stats() Stats {
	var s Stats
	if conns := g.conns.Load(); conns != nil {
		for _, c := range *conns {
			cs := c.Stats()
			s.Datagrams += cs.Datagrams
			s.Batches += cs.Batches
			s.Direct += cs.Direct
			s.Errors += cs.Errors
		}
	}
	return s
}

// Stats are a Conn's counters since it was opened.
type Stats struct {
	Datagrams uint64 // datagrams sent in batches
	Batches   uint64 // system calls that sent them
	Direct    uint64 // datagrams written straight to the socket
	Errors    uint64 // datagrams the kernel refused (dropped, like a lost packet)
}

// Conn is a UDP socket whose writes are batched while its Group is held. It implements
// net.PacketConn, and pion/ice's AddrPortReaderWriter so the UDP mux uses its
// allocation-free methods. Writes through the embedded *net.UDPConn's other methods
// (WriteToUDP, WriteMsgUDP, Write) bypass the batches and their ordering.
type Conn struct {
	*net.UDPConn
	g      *Group
	pc     *ipv4.PacketConn
	shards []shard
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	datagrams, batches, direct, errs atomic.Uint64
	// watch, when set (SetWatch), sees every datagram WriteToAddrPort is given, before it
	// is queued or sent: the bridge's check of its own SRTP keys (sfu/ownsrtp.go).
	watch atomic.Pointer[func(p []byte, to netip.AddrPort)]
}

// SetWatch makes f see every datagram written through WriteToAddrPort (and WriteTo) from
// now on, on the writer's goroutine; f must not keep p. Nil removes it.
func (c *Conn) SetWatch(f func(p []byte, to netip.AddrPort)) {
	if f == nil {
		c.watch.Store(nil)
		return
	}
	c.watch.Store(&f)
}

// shard queues the datagrams of the destinations that hash to it.
type shard struct {
	mu        sync.Mutex // guards cur and allocated
	cur       *batch     // filling; never nil
	allocated int
	queued    atomic.Int32 // batches handed to the flusher and not yet sent
	work      chan *batch  // to the flusher, in order
	free      chan *batch  // back from the flusher
	_         [64]byte     // keep shards on their own cache lines
}

type slot struct {
	buf  [slotSize]byte
	ip   [16]byte
	addr net.UDPAddr
}

type batch struct {
	slots [BatchSize]slot
	msgs  [BatchSize]ipv4.Message
	bufs  [BatchSize][1][]byte
	n     int
}

func newBatch() *batch {
	b := &batch{}
	for i := range b.msgs {
		b.msgs[i].Buffers = b.bufs[i][:]
		b.msgs[i].Addr = &b.slots[i].addr
	}
	return b
}

// add copies one datagram in; the caller checked that the batch has room.
func (b *batch) add(p []byte, to netip.AddrPort) {
	s := &b.slots[b.n]
	if len(p) <= slotSize {
		b.bufs[b.n][0] = s.buf[:copy(s.buf[:], p)]
	} else {
		b.bufs[b.n][0] = append([]byte(nil), p...)
	}
	ip := to.Addr()
	if ip.Is4() {
		a4 := ip.As4()
		copy(s.ip[:], a4[:])
		s.addr.IP = s.ip[:4]
	} else {
		s.ip = ip.As16()
		s.addr.IP = s.ip[:16]
	}
	s.addr.Port = int(to.Port())
	b.n++
}

// New wraps c; its writes are batched while g is held. Shards default to GOMAXPROCS.
func (g *Group) New(c *net.UDPConn) *Conn {
	n := runtime.GOMAXPROCS(0)
	if n < 2 {
		n = 2
	}
	conn := &Conn{UDPConn: c, g: g, pc: ipv4.NewPacketConn(c), shards: make([]shard, n), done: make(chan struct{})}
	for i := range conn.shards {
		s := &conn.shards[i]
		s.cur = newBatch()
		s.allocated = 1
		s.work = make(chan *batch, maxBatches)
		s.free = make(chan *batch, maxBatches)
		conn.wg.Add(1)
		go conn.flush(s)
	}
	if g != nil {
		g.mu.Lock()
		var next []*Conn
		if old := g.conns.Load(); old != nil {
			next = append(next, *old...)
		}
		next = append(next, conn)
		g.conns.Store(&next)
		g.mu.Unlock()
	}
	return conn
}

func (c *Conn) shardOf(to netip.AddrPort) *shard {
	ip := to.Addr().As16()
	h := uint32(to.Port())*2654435761 ^ uint32(ip[12])<<24 ^ uint32(ip[13])<<16 ^ uint32(ip[14])<<8 ^ uint32(ip[15])
	h ^= h >> 16
	return &c.shards[h%uint32(len(c.shards))]
}

// WriteToAddrPort implements pion/ice's AddrPortReaderWriter. While the group is held the
// datagram is queued and the write reports success; a datagram the kernel later refuses
// is dropped and counted, as the network would drop it.
func (c *Conn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if w := c.watch.Load(); w != nil {
		(*w)(p, to)
	}
	s := c.shardOf(to)
	s.mu.Lock()
	if c.g == nil || (c.g.holds.Load() == 0 && s.cur.n == 0 && s.queued.Load() == 0) {
		// Nothing of this shard is ahead of it: send now.
		s.mu.Unlock()
		c.direct.Add(1)
		return c.WriteToUDPAddrPort(p, to)
	}
	select {
	case <-c.done:
		s.mu.Unlock()
		return 0, net.ErrClosed
	default:
	}
	s.cur.add(p, to)
	if s.cur.n == BatchSize || c.g.holds.Load() == 0 {
		if err := c.handoff(s); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	s.mu.Unlock()
	return len(p), nil
}

// WriteTo implements net.PacketConn.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return c.UDPConn.WriteTo(p, addr)
	}
	return c.WriteToAddrPort(p, ua.AddrPort())
}

// ReadFromAddrPort implements pion/ice's AddrPortReaderWriter.
func (c *Conn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return c.ReadFromUDPAddrPort(p)
}

// handoff passes s.cur to the flusher and takes an empty batch. Caller holds s.mu.
func (c *Conn) handoff(s *shard) error {
	if s.cur.n == 0 {
		return nil
	}
	s.queued.Add(1)
	s.work <- s.cur // never blocks: at most maxBatches exist
	select {
	case b := <-s.free:
		s.cur = b
		return nil
	default:
	}
	if s.allocated < maxBatches {
		s.allocated++
		s.cur = newBatch()
		return nil
	}
	select {
	case b := <-s.free:
		s.cur = b
		return nil
	case <-c.done:
		s.cur = newBatch() // keep the invariant; nothing will send it
		return net.ErrClosed
	}
}

// trim drops the free batches of every shard; see Group.Trim.
func (c *Conn) trim() (freed int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
	drain:
		for {
			select {
			case <-s.free:
				s.allocated--
				freed++
			default:
				break drain
			}
		}
		s.mu.Unlock()
	}
	return freed
}

func (c *Conn) handoffAll() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		_ = c.handoff(s) // only fails once closed
		s.mu.Unlock()
	}
}

// flush is shard s's flusher goroutine: it owns each batch from handoff until it puts it
// back on s.free.
func (c *Conn) flush(s *shard) {
	defer c.wg.Done()
	for {
		select {
		case b := <-s.work:
			c.send(b)
			b.n = 0
			s.queued.Add(-1)
			s.free <- b
		case <-c.done:
			return
		}
	}
}

// send writes a batch, skipping any datagram the kernel refuses.
func (c *Conn) send(b *batch) {
	msgs := b.msgs[:b.n]
	for len(msgs) > 0 {
		// On an error for the first datagram x/net returns n = -1 (sendmmsg's own -1).
		n, err := c.pc.WriteBatch(msgs, 0)
		if n > 0 {
			c.datagrams.Add(uint64(n))
			c.batches.Add(1)
			msgs = msgs[n:]
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		// The first one failed (unreachable, refused by a firewall rule, …), or nothing
		// was sent without an error: drop it, as the network would, and go on. Either
		// way the loop advances.
		c.errs.Add(1)
		msgs = msgs[1:]
	}
}

// Stats returns the Conn's counters.
func (c *Conn) Stats() Stats {
	return Stats{Datagrams: c.datagrams.Load(), Batches: c.batches.Load(), Direct: c.direct.Load(), Errors: c.errs.Load()}
}

// Close closes the socket and stops the flushers; queued datagrams are dropped.
func (c *Conn) Close() error {
	err := c.UDPConn.Close()
	c.once.Do(func() {
		close(c.done)
		c.wg.Wait()
		if c.g != nil {
			c.g.mu.Lock()
			var next []*Conn
			if old := c.g.conns.Load(); old != nil {
				for _, x := range *old {
					if x != c {
						next = append(next, x)
					}
				}
			}
			c.g.conns.Store(&next)
			c.g.mu.Unlock()
		}
	})
	return err
}
