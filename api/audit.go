package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cau-project/cau/rooms"
)

// Audit listing limits.
const (
	defaultAuditLimit = 500
	maxAuditLimit     = 10000
)

// getAudit: GET /api/v1/audit[?since=…&until=…&target=…&limit=…] — the latest entries
// of the selection (500 unless limit says otherwise, at most 10,000), oldest first.
func (a *API) getAudit(w http.ResponseWriter, r *http.Request, _ *principal) {
	q := r.URL.Query()
	aq := rooms.AuditQuery{Target: q.Get("target"), Limit: defaultAuditLimit}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &aq.Since}, {"until", &aq.Until}} {
		if s := q.Get(f.name); s != "" {
			v, err := parseTime(f.name, s)
			if err != nil {
				a.fail(w, r, badRequest("%v", err))
				return
			}
			*f.dst = v
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAuditLimit {
			a.fail(w, r, badRequest("limit %q: want 1 to %d", s, maxAuditLimit))
			return
		}
		aq.Limit = n
	}
	entries, err := a.store.Audit(r.Context(), aq)
	if err != nil {
		a.fail(w, r, fmt.Errorf("audit: %w", err))
		return
	}
	for i := range entries {
		entries[i].Time = local(entries[i].Time)
	}
	if entries == nil {
		entries = []rooms.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, struct {
		Entries []rooms.AuditEntry `json:"entries"`
	}{entries})
}
