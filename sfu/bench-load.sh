#!/bin/sh
# bench-load: the bridge's CPU per forwarded packet beside the floor, in one run.
#
#   sfu/bench-load.sh [endpoints] [duration]      (make bench-load ENDPOINTS=151 DURATION=30s)
#
# Runs the floor benchmark (a bare UDP sender in the same shape: 1,200-byte datagrams,
# a burst of endpoints-1 per incoming packet, 240 bursts/s), then `cau loadtest` with one
# 2 Mbps video publisher against a separate `cau serve --dev`, then the floor again, and
# prints the server's µs of CPU per forwarded packet as a ratio to each floor. The
# machine may be shared: the floor measured around the run is the yardstick.
# CAU_BIN (default bin/cau) serves; CAU_TESTER_BIN (default CAU_BIN) runs the load test, so
# that two testers can be compared against one server build. BENCH_TESTER_PROFILE=1 keeps
# the tester's CPU profile (tester.pprof); BENCH_FLOOR=0 skips the floor benchmark (a
# comparison of testers needs no floor). BENCH_HTTP (127.0.0.1:17890), BENCH_UDP (17892) and
# BENCH_SERVE_FLAGS (more flags for cau serve, e.g. --debug-http 127.0.0.1:6060) may be set;
# the JSON report is left in $BENCH_OUT (default a temporary directory). BENCH_FLOOR_BIN runs
# the floor from a compiled sfu test binary (go test -c ./sfu) instead of go test, for a
# machine without Go (the device machine: docs/benchmarks.md); BENCH_FLOOR_CPUS pins it
# (taskset -c) to the cores the server is given.
set -eu
. "$(dirname "$0")/bench-serve.sh"
N=${1:-151}
DUR=${2:-30s}
BIN=${CAU_BIN:-bin/cau}
TESTER=${CAU_TESTER_BIN:-$BIN}
HTTP=${BENCH_HTTP:-127.0.0.1:17890}
UDP=${BENCH_UDP:-17892}
OUT=${BENCH_OUT:-$(mktemp -d)}
FAN=$((N - 1))

floor() {
	[ "${BENCH_FLOOR:-1}" != 0 ] || return 0
	pin=""
	[ -z "${BENCH_FLOOR_CPUS:-}" ] || pin="taskset -c $BENCH_FLOOR_CPUS"
	if [ -n "${BENCH_FLOOR_BIN:-}" ]; then
		CAU_BENCH_FANOUT=$FAN $pin "$BENCH_FLOOR_BIN" -test.run '^$' -test.bench "Floor/fanout=$FAN/" -test.benchtime 480x
	else
		CAU_BENCH_FANOUT=$FAN $pin go test -run '^$' -bench "Floor/fanout=$FAN/" -benchtime 480x ./sfu
	fi | tee -a "$OUT/floor.txt" | grep '^BenchmarkFloor'
}
metric() { grep -o "\"$1\": *[0-9.e+-]*" "$OUT/load.json" | head -1 | sed 's/.*: *//'; }

# Every simulated endpoint comes from 127.0.0.1: lift the per-address socket cap (256 by
# default, signaling/limits.go) that would otherwise refuse the 257th.
export CAU_MAX_SOCKETS_PER_ADDR=${CAU_MAX_SOCKETS_PER_ADDR:-100000}
# 1 x 500 is 501 endpoints: lift the bridge's default cap of 500 peers (issue 12's guard) too.
export CAU_MAX_BRIDGE_PEERS=${CAU_MAX_BRIDGE_PEERS:-1000}
echo "== floor before"
floor
# shellcheck disable=SC2086 # BENCH_SERVE_FLAGS is a list of flags (e.g. --debug-http 127.0.0.1:6060)
start_server 100 "$BIN" serve --dev --http "$HTTP" --udp-port "$UDP" --tcp-port -1 --log-level warn ${BENCH_SERVE_FLAGS:-}
echo "== cau loadtest 1 x $FAN, 2 Mbps, $DUR (server pid $srv)"
rc=0
prof=""
[ -z "${BENCH_TESTER_PROFILE:-}" ] || prof="--cpu-profile $OUT/tester.pprof"
# shellcheck disable=SC2086 # $prof is a flag and its value, or nothing
"$TESTER" loadtest --dev --url "http://$HTTP" --tree "" --endpoints "$N" --publishers 1 --media video \
	--video-kbps 2000 --fps 30 --duration "$DUR" --json "$OUT/load.json" --log-level warn $prof >"$OUT/load.txt" 2>&1 || rc=$?
kill $srv 2>/dev/null || true
wait $srv 2>/dev/null || true
tail -n 25 "$OUT/load.txt"
echo "== floor after"
floor
server=$(metric cpu_us_per_forwarded_packet)
echo
echo "server µs CPU per forwarded packet: $server (loadtest exit $rc; report $OUT/load.json)"
[ ! -f "$OUT/floor.txt" ] || awk -v s="$server" '/^BenchmarkFloor/ { for (i = 1; i < NF; i++) if ($(i+1) == "cpu-µs/pkt") {
	split($1, a, "/"); printf "  floor %-14s %6.2f µs/pkt   server/floor = %.2f\n", a[3], $i, s / $i } }' "$OUT/floor.txt"
exit $rc
