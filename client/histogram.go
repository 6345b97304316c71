package client

import (
	"math"
	"math/bits"
)

// Histogram counts non-negative int64 samples (e.g. nanoseconds) in log-linear buckets:
// values below 64 exactly, larger ones in 32 sub-buckets per power of two, so a quantile
// is off by at most about 3%. It has a fixed size (8 KiB), never allocates on Record and
// can be merged and subtracted, so per-stream histograms add up to a run's. The zero
// value is ready to use; it is not safe for concurrent use.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	max    int64
}

const (
	histSubBits = 5                  // 32 sub-buckets per power of two
	histSub     = 1 << histSubBits   // 32
	histLinear  = 2 * histSub        // values below 64 have their own bucket
	histBuckets = histLinear + 30*32 // up to 2^36 ns (about 68 s); larger values share the last
)

func histIndex(v int64) int {
	if v < histLinear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1) // ≥ 1
	m := int(uint64(v)>>uint(shift)) - histSub         // 0..31
	i := histLinear + (shift-1)*histSub + m
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histValue is the middle of bucket i.
func histValue(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := int64((i-histLinear)%histSub + histSub)
	lo := m << uint(shift)
	return lo + (int64(1)<<uint(shift))/2
}

// Record adds one sample; negative samples count as zero.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample recorded (not reduced by Sub).
func (h *Histogram) Max() int64 { return h.max }

// Mean is the average sample, 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value below which a fraction q (0..1) of the samples lie, 0 when
// empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histValue(i)
			if v > h.max && h.max > 0 {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// Sub removes the samples of an earlier snapshot of the same histogram, leaving those
// recorded since; Max keeps the later snapshot's value.
func (h *Histogram) Sub(earlier *Histogram) {
	for i, c := range earlier.counts {
		if h.counts[i] >= c {
			h.counts[i] -= c
		} else {
			h.counts[i] = 0
		}
	}
	if h.n >= earlier.n {
		h.n -= earlier.n
	} else {
		h.n = 0
	}
	h.sum -= earlier.sum
	if h.sum < 0 {
		h.sum = 0
	}
}
