package loadtest

// LayerFigures say at which simulcast layer the subscribers received the publishers'
// video in the window (publishers send three layers with Config.Simulcast; each packet
// names its layer, so a subscriber sees which one the bridge forwards it).
type LayerFigures struct {
	// Packets counts the video packets received at each layer: low, middle, top.
	Packets [3]int64 `json:"packets"`
	// Streams counts the video streams by the layer most of their packets came at.
	Streams [3]int `json:"streams"`
	// TopShare is the share of the video streams received mostly at the top layer.
	TopShare float64 `json:"top_share"`
}

// fillLayers sums the video streams' packets per layer over the window.
func (rep *Report) fillLayers(r *runner, start, end *snapshot) {
	var lf LayerFigures
	n := 0
	for _, b := range r.bots {
		for _, s := range b.streamList() {
			e, ok := end.streams[s]
			if !ok || s.Kind != "video" {
				continue
			}
			d := e.layers
			if st, ok := start.streams[s]; ok {
				for i := range d {
					d[i] -= st.layers[i]
				}
			}
			best, most := -1, int64(0)
			for i, v := range d {
				lf.Packets[i] += v
				if v > most {
					best, most = i, v
				}
			}
			if best >= 0 {
				lf.Streams[best]++
				n++
			}
		}
	}
	if n > 0 {
		lf.TopShare = float64(lf.Streams[2]) / float64(n)
	}
	rep.Layers = &lf
}
