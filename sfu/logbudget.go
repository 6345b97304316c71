package sfu

// The media ports take packets from anyone: garbage UDP, STUN with bad or no credentials,
// DTLS records from strangers. pion logs a warning for many of them, one line per packet,
// so a flood at the ICE port used to grow the log as fast as the flooder could send
// (issue 12, finding 9). Every line pion logs now spends from a budget per message (its
// scope and format; internal/logbudget); what the budget refuses is counted
// (cau_bridge_log_lines_suppressed_total) and the next line that goes out says how many
// of its kind were held back.

// pionScopes are the label values of cau_bridge_log_lines_suppressed_total; any other
// scope counts as "other", so the label stays bounded whatever pion names.
var pionScopes = map[string]bool{
	"ice": true, "udpmux": true, "tcpmux": true, "dtls": true, "pc": true, "srtp": true,
	"sctp": true, "datachannel": true, "ortc": true, "mux": true,
}

func scopeLabel(scope string) string {
	if pionScopes[scope] {
		return scope
	}
	return "other"
}
