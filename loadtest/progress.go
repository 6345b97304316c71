package loadtest

import (
	"context"
	"fmt"
	"time"
)

// progressFigures are what the progress line shows.
type progressFigures struct {
	joined, media, failed, dropped int
	streams                        int // with a packet in the last two seconds
	received, expected, lost       int64
}

func (r *runner) progressNow(now time.Time) progressFigures {
	var f progressFigures
	for _, b := range r.bots {
		switch b.state.Load() {
		case stateJoined:
			f.joined++
		case stateMedia, stateLeft:
			f.joined++
			f.media++
		case stateFailed:
			f.failed++
		case stateDropped:
			f.dropped++
		}
		for _, s := range b.streamList() {
			st := s.Stats()
			f.received += st.Received
			f.expected += st.Expected
			f.lost += st.Lost
			if now.Sub(st.Last) < 2*time.Second {
				f.streams++
			}
		}
	}
	return f
}

// progress draws the progress display until ctx ends: a line redrawn every second on a
// terminal, or a line every ProgressEvery otherwise.
func (r *runner) progress(ctx context.Context) {
	w := r.cfg.Progress
	if w == nil {
		return
	}
	every := time.Second
	if !r.cfg.Live {
		every = r.cfg.ProgressEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f := r.progressNow(now)
			rate := float64(f.received-last) / now.Sub(lastAt).Seconds()
			last, lastAt = f.received, now
			loss := 0.0
			if f.expected > 0 {
				loss = 100 * float64(f.lost) / float64(f.expected)
			}
			line := fmt.Sprintf("%5.0fs %-7s joined %d/%d (media %d) failed %d dropped %d | streams %d | rx %.0f pkt/s | loss %.3f%% | errors %d",
				now.Sub(r.started).Seconds(), r.phase.Load(), f.joined, len(r.bots), f.media, f.failed, f.dropped,
				f.streams, rate, loss, r.errors.Load()) + r.lastn.progress()
			if r.cfg.Live {
				fmt.Fprintf(w, "\r\x1b[K%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}
}

// finalProgress ends the live line so what follows starts on a fresh one.
func (r *runner) finalProgress() {
	if r.cfg.Progress != nil && r.cfg.Live {
		fmt.Fprintln(r.cfg.Progress)
	}
}
