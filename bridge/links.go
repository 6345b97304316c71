package bridge

import (
	"math"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/sfu/hopstats"
)

// PeerStats returns the link figures of every endpoint peer (relay peers excluded), for
// monitoring. Bitrates are over the time since the previous call.
func (a *Agent) PeerStats() []protocol.PeerStat {
	a.mu.Lock()
	peers := make(map[ids.PeerID]*sfu.Peer, len(a.peers))
	for id, ap := range a.peers {
		if ap.peer != nil && !id.IsRelay() {
			peers[id] = ap.peer
		}
	}
	a.mu.Unlock()
	now := time.Now()
	layers := a.layersByPeer()
	out := make([]protocol.PeerStat, 0, len(peers))
	for id, p := range peers {
		st := protocol.PeerStat{Peer: id, Up: upFigures(p, now), Down: downFigures(p, now),
			EstimateBps: estimate(p), Layers: layers[id]}
		st.Down.Hop, st.Up.Hop = hopFigures(p.HopStats())
		a.mu.Lock()
		prevUp, okUp := a.samples[sampleKey{id, true}]
		prevDown, okDown := a.samples[sampleKey{id, false}]
		a.samples[sampleKey{id, true}] = byteSample{at: now, bytes: st.Up.Bytes}
		a.samples[sampleKey{id, false}] = byteSample{at: now, bytes: st.Down.Bytes}
		a.mu.Unlock()
		st.Up.BitrateBps = rate(prevUp, okUp, st.Up.Bytes, now)
		st.Down.BitrateBps = rate(prevDown, okDown, st.Down.Bytes, now)
		st.Up.RTTMs = st.Down.RTTMs // one path, measured on the way down
		out = append(out, st)
	}
	return out
}

func rate(prev byteSample, ok bool, bytes uint64, now time.Time) float64 {
	if dt := now.Sub(prev.at).Seconds(); ok && dt > 0 && bytes >= prev.bytes {
		return 8 * float64(bytes-prev.bytes) / dt
	}
	return 0
}

func upFigures(p *sfu.Peer, now time.Time) protocol.LinkFigures {
	f := protocol.LinkFigures{LastPacketAgeMs: -1}
	var expected, lost int64
	var last time.Time
	for _, u := range p.UpTracks() {
		rs := u.ReceiveStats()
		f.Streams++
		f.Packets += rs.Packets
		f.Bytes += rs.Bytes
		expected += rs.Expected
		lost += rs.Lost
		f.JitterMs = math.Max(f.JitterMs, ms(rs.Jitter))
		if rs.LastPacket.After(last) {
			last = rs.LastPacket
		}
	}
	if expected > 0 {
		f.LossPct = 100 * float64(lost) / float64(expected)
	}
	if !last.IsZero() {
		f.LastPacketAgeMs = now.Sub(last).Milliseconds()
	}
	return f
}

func downFigures(p *sfu.Peer, now time.Time) protocol.LinkFigures {
	f := protocol.LinkFigures{LastPacketAgeMs: -1}
	var last time.Time
	for _, d := range p.DownTracks() {
		q := d.Quality()
		f.Streams++
		f.Packets += d.PacketsSent()
		f.Bytes += d.BytesSent()
		f.LossPct = math.Max(f.LossPct, 100*q.FractionLost)
		f.JitterMs = math.Max(f.JitterMs, ms(q.Jitter))
		f.RTTMs = math.Max(f.RTTMs, ms(q.RTT))
		if q.LastReport.After(last) {
			last = q.LastReport
		}
	}
	if !last.IsZero() {
		f.LastPacketAgeMs = now.Sub(last).Milliseconds()
	}
	return f
}

// hopFigures converts a peer's hop measurement: out is what this bridge sends it, in what
// it receives from it; both carry the path's RTT.
func hopFigures(h hopstats.Stats) (out, in *protocol.HopFigures) {
	dir := func(d hopstats.Direction) *protocol.HopFigures {
		return &protocol.HopFigures{Packets: d.Packets, Bytes: d.Bytes, Reported: d.Reported, Lost: d.Lost,
			JitterMs: ms(d.Jitter), RTTSumMs: ms(h.RTTSum), RTTSamples: h.RTTSamples, RTTDropped: h.RTTDropped,
			RTTMaxMs: ms(h.RTTMax)}
	}
	return dir(h.Out), dir(h.In)
}
