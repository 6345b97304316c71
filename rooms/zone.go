package rooms

import (
	"sync"
	"time"
)

// ZoneName is the IANA name of Vietnam's time zone: UTC+7 all year, no daylight saving.
const ZoneName = "Asia/Ho_Chi_Minh"

// zone is loaded once; see Zone.
var zone = sync.OnceValue(func() *time.Location {
	if loc, err := time.LoadLocation(ZoneName); err == nil {
		return loc
	}
	// No tz database on this host: the zone has been a fixed UTC+7 since 1975, so a
	// fixed zone gives the same wall clock for every meeting we will ever schedule.
	return time.FixedZone(ZoneName, 7*60*60)
})

// Zone returns the Asia/Ho_Chi_Minh location used to show times to users. Times are
// stored in UTC; convert with t.In(Zone()) only for display or for parsing user input.
func Zone() *time.Location { return zone() }

// LocalTimeLayout is how [FormatLocal] writes a time.
const LocalTimeLayout = "2006-01-02 15:04 (UTC-07:00)"

// FormatLocal writes t in Vietnam time, e.g. "2026-03-02 08:00 (UTC+07:00)".
func FormatLocal(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(Zone()).Format(LocalTimeLayout)
}

// ParseLocal reads a wall-clock time in Vietnam time ("2006-01-02 15:04" or
// "2006-01-02T15:04") and returns it in UTC.
func ParseLocal(s string) (time.Time, error) {
	var err error
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		var t time.Time
		if t, err = time.ParseInLocation(layout, s, Zone()); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}
