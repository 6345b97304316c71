package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/cau-project/cau/client"
)

// ReportVersion is the version of the JSON report's layout.
const ReportVersion = 1

// Report is the outcome of a run; it is written as JSON with WriteJSON. Figures about
// media cover the measurement window (after every join settled, for the run's duration);
// join figures cover the ramp.
type Report struct {
	Version int          `json:"version"`
	Started time.Time    `json:"started"`
	Config  ReportConfig `json:"config"`
	// RampSeconds is from the first join to the last join settled; WindowSeconds the
	// measurement window.
	RampSeconds   float64 `json:"ramp_s"`
	WindowSeconds float64 `json:"window_s"`

	Endpoints EndpointFigures `json:"endpoints"`
	// Join is token → first media packet received, in milliseconds (endpoints that
	// receive media); SignalJoin is token → the server's joined reply.
	Join       Percentiles `json:"join_ms"`
	SignalJoin Percentiles `json:"signal_join_ms"`
	// JoinAllStreams is token (or the last initial publication, if later) → every
	// published track flowing (video starts at a keyframe), for endpoints that got them
	// all before JoinTimeout.
	JoinAllStreams Percentiles `json:"join_all_streams_ms"`
	// JoinSteps splits the join of endpoints that got media into the steps between
	// (steps.go); each step's percentiles are over the endpoints that reached both ends.
	JoinSteps JoinSteps `json:"join_steps_ms"`

	Streams StreamFigures `json:"streams"`
	// Packets and Frames compare what publishers sent in the window, times the endpoints
	// that should receive it, with what arrived.
	Packets Counts `json:"packets"`
	Frames  Counts `json:"frames"`
	// Loss is per subscriber, in percent, from sequence gaps; Overall weighs every
	// packet equally. Jitter is per subscriber (RFC 3550, mean over its streams), in ms.
	Loss   Spread `json:"loss_pct"`
	Jitter Spread `json:"jitter_ms"`
	// JitterByKind is the mean jitter of the audio and of the video streams, in ms (video
	// jitter includes the spacing of a frame's packets, sent as a burst).
	JitterByKind map[string]float64 `json:"jitter_ms_by_kind"`
	// Latency is end to end (publisher's send → subscriber's receive, same clock), per
	// packet, in milliseconds.
	Latency Percentiles `json:"latency_ms"`
	// Layers say at which simulcast layer the video arrived; nil without Simulcast.
	Layers *LayerFigures `json:"layers,omitempty"`
	// LastN compares what each subscriber received with what the meeting's Last-N says it
	// should (lastnreport.go); nil without Talkers or ViewTiles.
	LastN *LastNFigures `json:"last_n,omitempty"`

	Server ServerFigures `json:"server"`
	Tester TesterFigures `json:"tester"`

	Rotations int64 `json:"rotations"`
	// Errors counts sessions dropped and publish or floor changes that failed.
	Errors     int64            `json:"errors"`
	Thresholds ReportThresholds `json:"thresholds"`
	Violations []string         `json:"violations"`
	Pass       bool             `json:"pass"`
}

// ReportConfig echoes the run's settings.
type ReportConfig struct {
	URL             string  `json:"url"`
	Meeting         string  `json:"meeting"`
	Mode            string  `json:"mode"`
	Media           string  `json:"media"`
	Endpoints       int     `json:"endpoints"`
	Publishers      int     `json:"publishers"`
	Sites           int     `json:"sites"`
	VideoKbps       int     `json:"video_kbps"`
	FPS             int     `json:"fps"`
	PacketsPerFrame int     `json:"packets_per_frame"`
	PayloadBytes    int     `json:"payload_bytes"`
	Simulcast       bool    `json:"simulcast,omitempty"`
	Talkers         int     `json:"talkers,omitempty"`
	ViewTiles       int     `json:"view_tiles,omitempty"`
	DurationSeconds float64 `json:"duration_s"`
	RampPerSecond   float64 `json:"ramp_per_s"`
	RotateSeconds   float64 `json:"rotate_every_s,omitempty"`
}

// ReportThresholds echoes the limits the run was held to.
type ReportThresholds struct {
	MaxLossPct     float64 `json:"max_loss_pct"`
	MaxFailedJoins int     `json:"max_failed_joins"`
	MaxJoinP95Ms   float64 `json:"max_join_p95_ms"`
	// MaxLastNMissPct applies only with a Last-N section.
	MaxLastNMissPct float64 `json:"max_lastn_miss_pct"`
}

// EndpointFigures count the endpoints by outcome.
type EndpointFigures struct {
	Requested int `json:"requested"`
	// Joined endpoints got the server's joined reply; WithMedia also received media.
	Joined    int `json:"joined"`
	WithMedia int `json:"with_media"`
	// Failed never joined or got no media in time; Dropped joined and lost the session.
	Failed   int       `json:"failed"`
	Dropped  int       `json:"dropped"`
	Failures []Failure `json:"failures,omitempty"` // the first few
}

// Failure says why one endpoint failed.
type Failure struct {
	Endpoint int    `json:"endpoint"`
	Site     string `json:"site"`
	Error    string `json:"error"`
}

// Percentiles summarise a distribution.
type Percentiles struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// StreamFigures count received streams (tracks) with packets in the window.
type StreamFigures struct {
	Total int `json:"total"`
	// PerSubscriberMin and Max range over endpoints that should receive something;
	// Expected is the most an endpoint should receive from the initial publishers (every
	// published track but its own, as the server forwards all to all).
	PerSubscriberMin int `json:"per_subscriber_min"`
	PerSubscriberMax int `json:"per_subscriber_max"`
	Expected         int `json:"expected_per_subscriber"`
}

// Counts compare sent and received.
type Counts struct {
	Sent     int64   `json:"sent"`
	Expected int64   `json:"expected"`
	Received int64   `json:"received"`
	Ratio    float64 `json:"ratio"` // Received / Expected
}

// Spread is a per-subscriber figure's mean and worst. Overall is over all packets (loss)
// or all streams (jitter) rather than per subscriber.
type Spread struct {
	Overall       float64 `json:"overall"`
	Mean          float64 `json:"mean"`
	Worst         float64 `json:"worst"`
	WorstEndpoint int     `json:"worst_endpoint"`
}

// ServerFigures come from the server's /metrics, over the window (memory: the end of the
// window against before the first join).
type ServerFigures struct {
	CPUSeconds         float64 `json:"cpu_s"`
	ForwardedPackets   float64 `json:"forwarded_packets"`
	ForwardedPerSecond float64 `json:"forwarded_per_s"`
	CPUMicrosPerPacket float64 `json:"cpu_us_per_forwarded_packet"`
	CPUPercent         float64 `json:"cpu_pct"` // of one core
	DroppedPackets     float64 `json:"dropped_packets"`
	// DroppedByReason splits DroppedPackets by the server's reason label.
	DroppedByReason        map[string]float64 `json:"dropped_by_reason,omitempty"`
	RSSBaselineBytes       float64            `json:"rss_baseline_bytes"`
	RSSEndBytes            float64            `json:"rss_end_bytes"`
	MemoryPerEndpointBytes float64            `json:"memory_per_endpoint_bytes"`
	Error                  string             `json:"error,omitempty"`
}

// TesterFigures are the load tester's own costs over the window.
type TesterFigures struct {
	CPUSeconds         float64 `json:"cpu_s"`
	CPUPercent         float64 `json:"cpu_pct"`
	CPUMicrosPerPacket float64 `json:"cpu_us_per_received_packet"`
}

func newReport(cfg Config) *Report {
	ppf, size := videoShape(cfg.VideoKbps, cfg.FPS)
	r := &Report{Version: ReportVersion, Violations: []string{}, JitterByKind: map[string]float64{}, Config: ReportConfig{
		URL: cfg.URL, Meeting: cfg.Meeting, Mode: cfg.Mode, Media: cfg.Media, Endpoints: cfg.Endpoints,
		Publishers: cfg.Publishers, Sites: len(cfg.Sites), VideoKbps: cfg.VideoKbps, FPS: cfg.FPS,
		PacketsPerFrame: ppf, PayloadBytes: size, DurationSeconds: cfg.Duration.Seconds(), RampPerSecond: cfg.Ramp,
		Simulcast: cfg.Simulcast, Talkers: cfg.Talkers, ViewTiles: cfg.ViewTiles,
	}, Thresholds: ReportThresholds{MaxLossPct: cfg.Thresholds.MaxLossPct, MaxFailedJoins: cfg.Thresholds.MaxFailedJoins,
		MaxJoinP95Ms: ms(cfg.Thresholds.MaxJoinP95), MaxLastNMissPct: cfg.Thresholds.MaxLastNMissPct}}
	if cfg.Mode == ModeRotate {
		r.Config.RotateSeconds = cfg.RotateEvery.Seconds()
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fill computes the report from the bots and the window's two snapshots.
func (rep *Report) fill(r *runner, base serverSample, start, end *snapshot) {
	rep.WindowSeconds = end.at.Sub(start.at).Seconds()
	rep.Rotations = r.rotations.Load()
	rep.Errors = r.errors.Load()
	rep.fillEndpoints(r)
	rep.fillMedia(r, start, end)
	rep.fillCosts(base, start, end)
	rep.fillLastN(r, start, end)
	rep.check(r.cfg.Thresholds)
}

func (rep *Report) fillEndpoints(r *runner) {
	e := &rep.Endpoints
	e.Requested = len(r.bots)
	var join, signal, all []float64
	for _, b := range r.bots {
		b.mu.Lock()
		tokenAt, joinedAt, err := b.tokenAt, b.joinedAt, b.err
		b.mu.Unlock()
		state := b.state.Load()
		if !joinedAt.IsZero() {
			e.Joined++
			signal = append(signal, ms(joinedAt.Sub(tokenAt)))
		}
		switch state {
		case stateFailed:
			e.Failed++
		case stateDropped:
			e.Dropped++
		}
		if first := b.firstMedia(); !first.IsZero() {
			e.WithMedia++
			if from := r.mediaStart(b); !from.IsZero() && state != stateFailed {
				join = append(join, ms(first.Sub(from)))
				if at := b.allStreams(); !at.IsZero() {
					all = append(all, ms(at.Sub(r.allMediaStart(b))))
				}
			}
		}
		if err != nil && len(e.Failures) < 20 {
			e.Failures = append(e.Failures, Failure{Endpoint: b.idx, Site: b.site.ID, Error: err.Error()})
		}
	}
	rep.Join = percentiles(join)
	rep.SignalJoin = percentiles(signal)
	rep.JoinAllStreams = percentiles(all)
	rep.JoinSteps = joinSteps(r.bots)
}

// fillMedia sums the streams' window deltas.
func (rep *Report) fillMedia(r *runner, start, end *snapshot) {
	var (
		lat                       client.Histogram
		lossPer, jitterPer        spreadBuilder
		expectedAll, lostAll      int64
		perSubMin, perSubMax      = math.MaxInt, 0
		total, connected          int
		jitterByKind, streamsKind = map[string]float64{}, map[string]float64{}
	)
	for _, b := range r.bots {
		if s := b.state.Load(); s == stateMedia || s == stateJoined || s == stateLeft {
			connected++
		}
		var expected, lost int64
		var jitterSum float64
		streams := 0
		for _, s := range b.streamList() {
			e, ok := end.streams[s]
			if !ok {
				continue
			}
			d, h := e.st, e.lat
			if st, ok := start.streams[s]; ok {
				d.Received -= st.st.Received
				d.Expected -= st.st.Expected
				d.Lost -= st.st.Lost
				d.Frames -= st.st.Frames
				h.Sub(&st.lat)
			}
			if d.Received <= 0 {
				continue
			}
			streams++
			rep.Packets.Received += d.Received
			rep.Frames.Received += d.Frames
			expected += d.Expected
			lost += max(d.Lost, 0)
			jitterSum += e.st.JitterMs
			jitterByKind[s.Kind] += e.st.JitterMs
			streamsKind[s.Kind]++
			lat.Merge(&h)
		}
		if streams == 0 {
			if b.state.Load() != stateFailed && r.expectedStreams(b) > 0 {
				perSubMin = 0
			}
			continue
		}
		total += streams
		perSubMin, perSubMax = min(perSubMin, streams), max(perSubMax, streams)
		expectedAll += expected
		lostAll += lost
		loss := 0.0
		if expected > 0 {
			loss = 100 * float64(lost) / float64(expected)
		}
		lossPer.add(loss, b.idx)
		jitterPer.add(jitterSum/float64(streams), b.idx)
	}
	if perSubMin == math.MaxInt || rep.Config.Publishers == 0 {
		perSubMin = 0
	}
	expectedPer := 0
	for _, b := range r.bots {
		expectedPer = max(expectedPer, r.expectedStreams(b))
	}
	rep.Streams = StreamFigures{Total: total, PerSubscriberMin: perSubMin, PerSubscriberMax: perSubMax,
		Expected: expectedPer}
	rep.Loss = lossPer.spread()
	if expectedAll > 0 {
		rep.Loss.Overall = 100 * float64(lostAll) / float64(expectedAll)
	}
	rep.Jitter = jitterPer.spread()
	var jsum, jn float64
	for k, sum := range jitterByKind {
		rep.JitterByKind[k] = sum / streamsKind[k]
		jsum += sum
		jn += streamsKind[k]
	}
	if jn > 0 {
		rep.Jitter.Overall = jsum / jn
	}
	rep.Latency = histPercentiles(&lat)
	if r.cfg.Simulcast {
		rep.fillLayers(r, start, end)
	}

	for synth, e := range end.sent {
		d := e
		if s, ok := start.sent[synth]; ok {
			d.AudioPackets -= s.AudioPackets
			d.VideoPackets -= s.VideoPackets
			d.VideoFrames -= s.VideoFrames
		}
		rep.Packets.Sent += d.AudioPackets + d.VideoPackets
		rep.Frames.Sent += d.VideoFrames
	}
	receivers := int64(max(connected-1, 0))
	rep.Packets.Expected = rep.Packets.Sent * receivers
	rep.Frames.Expected = rep.Frames.Sent * receivers
	rep.Packets.Ratio = ratio(rep.Packets.Received, rep.Packets.Expected)
	rep.Frames.Ratio = ratio(rep.Frames.Received, rep.Frames.Expected)
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// fillCosts derives the server's and the tester's costs from the snapshots.
func (rep *Report) fillCosts(base serverSample, start, end *snapshot) {
	secs := end.at.Sub(start.at).Seconds()
	t := &rep.Tester
	t.CPUSeconds = (end.cpu - start.cpu).Seconds()
	if secs > 0 {
		t.CPUPercent = 100 * t.CPUSeconds / secs
	}
	if rep.Packets.Received > 0 {
		t.CPUMicrosPerPacket = 1e6 * t.CPUSeconds / float64(rep.Packets.Received)
	}
	s := &rep.Server
	switch {
	case s.Error != "":
		return
	case start.serverErr != nil:
		s.Error = start.serverErr.Error()
		return
	case end.serverErr != nil:
		s.Error = end.serverErr.Error()
		return
	}
	s.CPUSeconds = end.server.CPU - start.server.CPU
	s.ForwardedPackets = end.server.Forwarded - start.server.Forwarded
	s.DroppedPackets = end.server.Dropped - start.server.Dropped
	for reason, n := range end.server.DroppedBy {
		if d := n - start.server.DroppedBy[reason]; d > 0 {
			if s.DroppedByReason == nil {
				s.DroppedByReason = map[string]float64{}
			}
			s.DroppedByReason[reason] = d
		}
	}
	if secs > 0 {
		s.ForwardedPerSecond = s.ForwardedPackets / secs
		s.CPUPercent = 100 * s.CPUSeconds / secs
	}
	if s.ForwardedPackets > 0 {
		s.CPUMicrosPerPacket = 1e6 * s.CPUSeconds / s.ForwardedPackets
	}
	s.RSSBaselineBytes, s.RSSEndBytes = base.RSS, end.server.RSS
	if rep.Endpoints.Joined > 0 {
		s.MemoryPerEndpointBytes = (end.server.RSS - base.RSS) / float64(rep.Endpoints.Joined)
	}
}

// check applies the thresholds.
func (rep *Report) check(t Thresholds) {
	if t.MaxLossPct >= 0 && rep.Loss.Overall > t.MaxLossPct {
		rep.Violations = append(rep.Violations, fmt.Sprintf("loss %.3f%% > %.3f%%", rep.Loss.Overall, t.MaxLossPct))
	}
	if bad := rep.Endpoints.Failed + rep.Endpoints.Dropped; t.MaxFailedJoins >= 0 && bad > t.MaxFailedJoins {
		rep.Violations = append(rep.Violations, fmt.Sprintf("%d endpoints failed to join or were dropped (allowed %d)",
			bad, t.MaxFailedJoins))
	}
	if t.MaxJoinP95 > 0 && rep.Join.P95 > ms(t.MaxJoinP95) {
		rep.Violations = append(rep.Violations, fmt.Sprintf("join p95 %.0f ms > %.0f ms", rep.Join.P95, ms(t.MaxJoinP95)))
	}
	// Loss counts gaps among what arrived; a server that falls behind delivers late
	// instead, so in fixed mode what arrived must also match what was sent (1% slack for
	// packets in flight at the window's edges). With simulcast a publisher sends every
	// layer and a subscriber receives one, so frames are compared instead of packets.
	// Under Last-N a subscriber receives a few of the streams sent: the Last-N section
	// checks what it received instead.
	got, what := rep.Packets, "packets"
	if rep.Config.Simulcast && rep.Frames.Expected > 0 {
		got, what = rep.Frames, "frames"
	}
	if t.MaxLossPct >= 0 && rep.Config.Mode == ModeFixed && got.Expected > 0 && rep.LastN == nil &&
		got.Ratio < 1-t.MaxLossPct/100-0.01 {
		rep.Violations = append(rep.Violations, fmt.Sprintf("received %.2f%% of the %s sent to subscribers (the rest late or lost)",
			100*got.Ratio, what))
	}
	if rep.Config.Publishers > 0 && rep.Config.Endpoints > 1 && rep.Packets.Received == 0 {
		rep.Violations = append(rep.Violations, "no media received in the window")
	}
	rep.checkLastN(t)
	rep.Pass = len(rep.Violations) == 0
}

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Percentiles{Count: int64(len(s)), Mean: sum / float64(len(s)), P50: at(0.5), P95: at(0.95), P99: at(0.99),
		Max: s[len(s)-1]}
}

func histPercentiles(h *client.Histogram) Percentiles {
	q := func(x float64) float64 { return float64(h.Quantile(x)) / 1e6 }
	return Percentiles{Count: int64(h.Count()), Mean: h.Mean() / 1e6, P50: q(0.5), P95: q(0.95), P99: q(0.99),
		Max: float64(h.Max()) / 1e6}
}

// spreadBuilder collects a per-subscriber figure.
type spreadBuilder struct {
	sum, worst float64
	worstAt, n int
}

func (b *spreadBuilder) add(v float64, endpoint int) {
	if b.n == 0 || v > b.worst {
		b.worst, b.worstAt = v, endpoint
	}
	b.sum += v
	b.n++
}

func (b *spreadBuilder) spread() Spread {
	if b.n == 0 {
		return Spread{}
	}
	return Spread{Mean: b.sum / float64(b.n), Worst: b.worst, WorstEndpoint: b.worstAt}
}

// WriteJSON writes the report, indented, to path ("-" for stdout).
func (rep *Report) WriteJSON(path string, stdout io.Writer) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
	} else {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
