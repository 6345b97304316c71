package rooms

import (
	"context"
	"errors"
)

// Fence is the fencing token of a meeting's lease as a store write carries it (issue 16):
// the signaling node that owns a live meeting holds a lease whose token grows at every
// change of owner, and its writes for the meeting (roll call, audit, floor) are made only
// while Key, the lease's counter, still holds Token. A write queued before the node lost
// the lease, and made after another node took it, is refused with ErrFenced rather than
// written over the new owner's record.
type Fence struct {
	// Key is the store key of the lease's token counter (package lease names it).
	Key   string
	Token int64
}

// ErrFenced refuses a write whose fence is stale: the meeting's lease has passed to
// another signaling node since the write was decided. It is final: retrying cannot help.
var ErrFenced = errors.New("write fenced: the meeting's lease passed to another signaling node")

type fenceKey struct{}

// WithFence returns a context whose store writes are made only under f. Stores that
// have no leases (one node, the embedded store) ignore it.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceOf is for store backends: the fence a write's context carries, if any.
func FenceOf(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok && f.Key != ""
}
