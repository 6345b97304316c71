package rooms

import (
	"context"
	"sync/atomic"
	"time"
)

// AuditEntry records who did what, when: every schedule change, floor action, join
// and token use the callers choose to log. Entries are append-only.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Actor is who acted, as their verified token names them (its subject, a room
	// device's endpoint, or role@site), never a name the client chose; Role and Site are
	// the token's role and site.
	Actor string `json:"actor"`
	Role  Role   `json:"role"`
	Site  string `json:"site,omitempty"`
	// Action is what was done: a floor [Action] or a caller's verb ("schedule", "join").
	Action string `json:"action"`
	// Target is what it was done to: a meeting, site or endpoint id.
	Target string `json:"target"`
	// Detail is free text: the outcome, the refusal reason, parameters.
	Detail string `json:"detail,omitempty"`
}

// NewAuditEntry builds an entry for an actor's action at now (stored in UTC).
func NewAuditEntry(now time.Time, a Actor, action, target, detail string) AuditEntry {
	return AuditEntry{Time: now.UTC(), Actor: a.Name, Role: a.Role, Site: a.Site, Action: action, Target: target, Detail: detail}
}

// AuditQuery selects audit entries.
type AuditQuery struct {
	// Since and Until bound Time: Since ≤ Time < Until; zero values leave that end open.
	Since, Until time.Time
	// Target, if set, keeps only entries about that target.
	Target string
	// Limit, if positive, keeps only the latest Limit entries of the selection.
	Limit int
}

// Match reports whether e is selected by q's bounds and target (not the limit).
func (q AuditQuery) Match(e AuditEntry) bool {
	return (q.Since.IsZero() || !e.Time.Before(q.Since)) &&
		(q.Until.IsZero() || e.Time.Before(q.Until)) &&
		(q.Target == "" || e.Target == q.Target)
}

// PendingAudit is an audit entry a store writes in the same transaction as the change
// it records (see [WithAudit]), so a change is never made unaudited, and a refused or
// failed change leaves no entry claiming it was made.
type PendingAudit struct {
	Entry   AuditEntry
	written atomic.Bool // set by the backend once the transaction with the entry committed
}

type pendingAuditKey struct{}

// WithAudit returns a context that makes the next store write made with it also append
// e, in its transaction. Later writes with the same context append nothing more.
func WithAudit(ctx context.Context, e AuditEntry) (context.Context, *PendingAudit) {
	p := &PendingAudit{Entry: e}
	return context.WithValue(ctx, pendingAuditKey{}, p), p
}

// PendingAuditOf is for store backends: the entry to append in this write's
// transaction, or nil if ctx carries none or it is already written.
func PendingAuditOf(ctx context.Context) *PendingAudit {
	p, _ := ctx.Value(pendingAuditKey{}).(*PendingAudit)
	if p == nil || p.written.Load() {
		return nil
	}
	return p
}

// MarkWritten is for store backends, after the transaction with the entry committed.
func (p *PendingAudit) MarkWritten() { p.written.Store(true) }

// Written reports whether a store wrote the entry with a change.
func (p *PendingAudit) Written() bool { return p.written.Load() }
