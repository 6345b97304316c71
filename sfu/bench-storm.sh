#!/bin/sh
# bench-storm: issue 11's join storm, twice back to back against one server.
#
#   sfu/bench-storm.sh [endpoints] [ramp] [duration]      (defaults: 258 50/s 20s)
#
# Starts `cau serve --dev --debug-http` and runs `cau loadtest` with Gia Lai's tree, two
# publishers at 250 kbps 15 fps, joining at the ramp; the second run starts the moment
# the first one ends (its endpoints leave as the next meeting's join). After each run it
# prints the tester's summary, the server's join phases (p50/p95 over that run, from
# cau_signaling_join_phase_seconds), and the subscriber offers and answers per join (a
# count that holds on a loaded machine, unlike the latencies), and keeps the mutex and
# block profiles. CAU_BIN (default bin/cau) serves; CAU_TESTER_BIN (default CAU_BIN)
# runs the load test, so that two servers can be compared with one tester.
# BENCH_TESTER_PROFILE=1 keeps the tester's CPU profile too (tester-N.pprof);
# BENCH_SERVER_PROFILE=S the server's, S seconds from each run's start (cpu-N.pprof: in
# run 2 the previous meeting's teardown beside the joins). Every run also samples the
# server's peers, participants and subscriber offers so far every 0.25 s (peers-N.txt:
# "seconds peers participants offers")
# to show how long a meeting's teardown lasts into the next. BENCH_HTTP
# (127.0.0.1:27890), BENCH_UDP (27892), BENCH_DEBUG (127.0.0.1:26060); output in
# $BENCH_OUT (default a temporary directory). TURN and SIP listen on their own ports so that it runs beside a dev server.
set -eu
. "$(dirname "$0")/bench-serve.sh"
N=${1:-258}
RAMP=${2:-50/s}
DUR=${3:-20s}
BIN=${CAU_BIN:-bin/cau}
TESTER=${CAU_TESTER_BIN:-$BIN}
HTTP=${BENCH_HTTP:-127.0.0.1:27890}
UDP=${BENCH_UDP:-27892}
DBG=${BENCH_DEBUG:-127.0.0.1:26060}
OUT=${BENCH_OUT:-$(mktemp -d)}

# Every simulated endpoint comes from 127.0.0.1: lift the per-address socket cap.
export CAU_MAX_SOCKETS_PER_ADDR=${CAU_MAX_SOCKETS_PER_ADDR:-100000}
start_server 300 env CAU_DATA_DIR="$OUT/data" CAU_TURN_UDP_ADDR=127.0.0.1:23478 CAU_TURN_TCP_ADDR=127.0.0.1:25349 \
	"$BIN" serve --dev --sip off --http "$HTTP" --udp-port "$UDP" --tcp-port -1 --log-level info \
	--debug-http "$DBG"

# summary before after: join phases' p50/p95 (ms) between two scrapes, and the counts.
summary() {
	awk -v F="$1" '
	function val(line) { n = split(line, f, " "); return f[n] + 0 }
	/^cau_signaling_join_phase_seconds_bucket/ {
		match($0, /phase="[a-z]+"/); ph = substr($0, RSTART + 7, RLENGTH - 8)
		match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
		c[ph SUBSEP le] += (FILENAME == F ? -1 : 1) * val($0)
		if (!(ph SUBSEP le in seen)) { seen[ph SUBSEP le] = 1; les[ph] = les[ph] " " le }
	}
	/^cau_signaling_joins_total / { j += (FILENAME == F ? -1 : 1) * val($0) }
	/^cau_signaling_subscriber_offers_total / { o += (FILENAME == F ? -1 : 1) * val($0) }
	/^cau_signaling_messages_total\{type="answer"\}/ { a += (FILENAME == F ? -1 : 1) * val($0) }
	function q(ph, p,   k, m, i, t, lo, plo, le, cnt) {
		m = split(les[ph], k, " "); t = p * c[ph SUBSEP "+Inf"]; lo = 0; plo = 0
		for (i = 1; i <= m; i++) {
			le = k[i]; cnt = c[ph SUBSEP le]
			if (le == "+Inf") return ">" lo * 1000
			if (cnt >= t) return sprintf("%.0f", 1000 * (lo + (le - lo) * (t - plo) / (cnt - plo > 0 ? cnt - plo : 1)))
			lo = le; plo = cnt
		}
	}
	END {
		split("socket verify meeting place lock add total", P, " ")
		for (i = 1; i <= 7; i++) printf "  %-8s p50 %6s ms  p95 %6s ms\n", P[i], q(P[i], 0.5), q(P[i], 0.95)
		printf "  joins %d, subscriber offers %d (%.2f a join), answers %d (%.2f a join)\n", j, o, j ? o / j : 0, a, j ? a / j : 0
	}' "$1" "$2"
}

# sample_drops FILE: every half second, each UDP socket's drop count (/proc/net/udp:
# datagrams the kernel dropped for that socket's full receive buffer), as "inode port
# drops", until killed. A socket's last sample is its total: the bridge's ICE port apart
# from everyone else's (the tester's), which the box-wide counter cannot tell apart.
sample_drops() {
	while :; do
		awk 'NR > 1 { split($2, a, ":"); print $10, a[2], $NF } END { print "--" }' /proc/net/udp >>"$1"
		sleep 0.5
	done
}
# drops_by FILE: the drops during the sampling of the bridge's ICE socket and of all the
# others (a socket open at the first sample counts from its count then).
drops_by() {
	awk -v port="$(printf '%04X' "$UDP")" '$1 == "--" { sweep++; next }
	!sweep { first[$1] = $3 } { d[$1] = $3 - first[$1]; p[$1] = $2 }
	END { for (i in d) if (p[i] == port) b += d[i]; else o += d[i]
		printf "bridge ICE socket %d, other sockets (tester) %d", b, o }' "$1"
}

# sample_peers FILE: every quarter second, the seconds since it started and the server's
# cau_bridge_peers, cau_participants and cau_signaling_subscriber_offers_total (the offers
# made while joining apart from those a meeting's end makes), until killed.
sample_peers() {
	t0=$(date +%s.%N)
	while :; do
		curl -s "http://$HTTP/metrics" | awk -v t0="$t0" -v now="$(date +%s.%N)" '
			/^cau_bridge_peers / { p = $2 } /^cau_participants / { q = $2 }
			/^cau_signaling_subscriber_offers_total / { o = $2 }
			END { printf "%.2f %d %d %d\n", now - t0, p, q, o }' >>"$1"
		sleep 0.25
	done
}

for r in 1 2; do
	echo "== run $r: $N endpoints at $RAMP ($(uptime | sed 's/.*load/load/'))"
	sample_drops "$OUT/udp-drops-$r.txt" &
	sampler=$!
	sample_peers "$OUT/peers-$r.txt" &
	psampler=$!
	cpuprof=""
	if [ -n "${BENCH_SERVER_PROFILE:-}" ]; then
		curl -s -o "$OUT/cpu-$r.pprof" "http://$DBG/debug/pprof/profile?seconds=$BENCH_SERVER_PROFILE" &
		cpuprof=$!
	fi
	curl -s "http://$HTTP/metrics" >"$OUT/metrics-before-$r.txt"
	udp0=$(awk '/^Udp:/ { n++ } /^Udp:/ && n == 2 { print $6 }' /proc/net/snmp)
	prof=""
	[ -z "${BENCH_TESTER_PROFILE:-}" ] || prof="--cpu-profile $OUT/tester-$r.pprof"
	"$TESTER" loadtest --dev --url "http://$HTTP" --endpoints "$N" --tree deploy/examples/gia-lai.yaml --publishers 2 \
		--video-kbps 250 --fps 15 --duration "$DUR" --ramp "$RAMP" --json "$OUT/load-$r.json" --log-level warn $prof \
		>"$OUT/load-$r.txt" 2>&1 || true
	curl -s "http://$HTTP/metrics" >"$OUT/metrics-after-$r.txt"
	udp1=$(awk '/^Udp:/ { n++ } /^Udp:/ && n == 2 { print $6 }' /proc/net/snmp)
	kill "$sampler" "$psampler"
	[ -z "$cpuprof" ] || wait "$cpuprof" || true
	curl -s -o "$OUT/mutex-$r.pprof" "http://$DBG/debug/pprof/mutex"
	curl -s -o "$OUT/block-$r.pprof" "http://$DBG/debug/pprof/block"
	grep -E '^  (endpoints|join|join steps|server|tester) ' "$OUT/load-$r.txt" || tail -n 5 "$OUT/load-$r.txt"
	echo "  UDP datagrams dropped for a full receive buffer, box-wide, during the run: $((udp1 - udp0));" \
		"by socket: $(drops_by "$OUT/udp-drops-$r.txt")"
	echo "  server's join phases over the run:"
	summary "$OUT/metrics-before-$r.txt" "$OUT/metrics-after-$r.txt"
done
# After the last meeting ended: does the server return to its baseline (issue 11: RSS
# stayed ~950 MB with nobody connected)? Heap in use and goroutines should; RSS falls as
# the runtime returns pages (GC at its pace, the scavenger over minutes).
gauges() {
	awk '/^(process_resident_memory_bytes|go_memstats_heap_inuse_bytes|go_goroutines|cau_bridge_peers|cau_participants) / {
		v = $2 + 0; if ($1 ~ /bytes/) v = sprintf("%.0f MB", v / 1e6); printf " %s %s", $1, v }' "$1"
}
sleep "${BENCH_SETTLE:-15}"
curl -s "http://$HTTP/metrics" >"$OUT/metrics-settled.txt"
# The heap profile with gc=1 collects first: what is still live, not garbage awaiting a GC.
curl -s -o "$OUT/heap-settled.pprof" "http://$DBG/debug/pprof/heap?gc=1"
curl -s "http://$HTTP/metrics" >"$OUT/metrics-collected.txt"
echo "== server before the first meeting:$(gauges "$OUT/metrics-before-1.txt")"
echo "== ${BENCH_SETTLE:-15} s after the last left:$(gauges "$OUT/metrics-settled.txt")"
echo "== then after a forced GC:$(gauges "$OUT/metrics-collected.txt") (heap-settled.pprof)"
# The time joins and leaves waited for their meeting's lock over both runs, from the block
# profile (it records every wait over 10 µs; the mutex profile samples 1 in 100).
go tool pprof -top -cum -nodecount=3000 -unit=s -focus='sync.\(\*Mutex\).Lock' "$OUT/block-2.pprof" 2>/dev/null | awk '
	/signaling\.\(\*meeting\)\.(add|remove)$/ { v[$NF ~ /add$/ ? "add" : "remove"] = $4 }
	END { printf "== lock wait over both runs: joins (meeting.add) %s, leaves (meeting.remove) %s\n",
		v["add"] ? v["add"] : "0s", v["remove"] ? v["remove"] : "0s" }'
echo "output, profiles (mutex-N.pprof, block-N.pprof) and logs: $OUT"
