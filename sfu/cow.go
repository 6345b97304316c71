package sfu

// An up track's subscribers and taps are copy-on-write snapshots: the read loop loads
// the slice without a lock, so a change builds a new slice (under the track's lock) and
// never writes into one a reader may hold (STYLE habit 6).

// withAdded returns a new slice: s, then x.
func withAdded[T any](s []T, x T) []T {
	next := make([]T, len(s), len(s)+1)
	copy(next, s)
	return append(next, x)
}

// without returns a new slice: s less every x.
func without[T comparable](s []T, x T) []T {
	next := make([]T, 0, len(s))
	for _, y := range s {
		if y != x {
			next = append(next, y)
		}
	}
	return next
}
