package sfu

import (
	"runtime"
	"sync"

	"github.com/pion/rtp"
)

// Fan-out of a popular track is split across goroutines so that one published track can
// use every core (1 × 300 needs more than one core's worth of writes). Below
// parallelMin subscribers one goroutine is cheaper than the hand-off.
const (
	parallelMin = 64 // subscribers before the fan-out is split
	chunkMin    = 32 // subscribers per goroutine, at least
)

// fanJob is one goroutine's share of one packet's fan-out. The reader fills it, hands it
// over on the worker's channel and reads counts back after wg.Wait: the channel and the
// WaitGroup order every access, so the job needs no lock.
type fanJob struct {
	t        *UpTrack
	hdr      *rtp.Header
	payload  []byte
	keyframe bool
	downs    []*DownTrack
	counts   pendingCounts
	wg       *sync.WaitGroup
}

// fanPool is an UpTrack's fan-out workers, owned by its reader goroutine: created on
// the first packet with parallelMin subscribers, stopped when the reader returns.
//
// Each packet's fan-out finishes (wg.Wait) before the next one starts, so a subscriber
// gets its packets in order whichever goroutine writes them, and a DownTrack's
// forwarding state is touched by one goroutine at a time.
type fanPool struct {
	work []chan *fanJob // one per worker
	jobs []fanJob       // reused: jobs[i] goes to worker i
	wg   sync.WaitGroup
}

func newFanPool() *fanPool {
	n := runtime.GOMAXPROCS(0) - 1 // the reader is one of the writers
	if n < 1 {
		n = 1
	}
	p := &fanPool{work: make([]chan *fanJob, n), jobs: make([]fanJob, n)}
	for i := range p.work {
		ch := make(chan *fanJob, 1)
		p.work[i] = ch
		go func() {
			for j := range ch {
				j.counts = pendingCounts{}
				j.t.writeAll(j.downs, j.hdr, j.payload, j.keyframe, &j.counts)
				j.wg.Done()
			}
		}()
	}
	return p
}

func (p *fanPool) stop() {
	if p == nil {
		return
	}
	for _, ch := range p.work {
		close(ch)
	}
}

// fanOut writes one packet to downs, split between the reader and the workers.
func (p *fanPool) fanOut(t *UpTrack, downs []*DownTrack, hdr *rtp.Header, payload []byte, keyframe bool, pending *pendingCounts) {
	parts := min(len(p.work)+1, len(downs)/chunkMin)
	size := (len(downs) + parts - 1) / parts
	mine := downs[:size]
	rest := downs[size:]
	used := 0
	for ; len(rest) > 0; used++ {
		k := min(size, len(rest))
		j := &p.jobs[used]
		j.t, j.hdr, j.payload, j.keyframe, j.downs, j.wg = t, hdr, payload, keyframe, rest[:k], &p.wg
		rest = rest[k:]
		p.wg.Add(1)
		p.work[used] <- j
	}
	t.writeAll(mine, hdr, payload, keyframe, pending)
	p.wg.Wait()
	for i := 0; i < used; i++ {
		j := &p.jobs[i]
		pending.add(&j.counts)
		j.downs, j.payload, j.hdr = nil, nil, nil // hold no packet between fan-outs
	}
}
