#!/bin/sh
# bench-mem: the server's memory per video subscriber (issue 11), with a reference from
# the same run: RSS, heap, goroutine stacks and goroutines before the first join and
# every 5 s of a `cau loadtest` 1 video publisher x (N-1) subscribers, 2 Mbps, 30 s,
# against a separate `cau serve --dev`; a heap and a goroutine profile at 35 s.
#
#   sfu/bench-mem.sh [endpoints] [out-dir]        (CAU_BIN, RAMP=10/s, BENCH_HTTP,
#                                                  BENCH_UDP, BENCH_DEBUG, AFTER may be set)
#
# AFTER="5 60 90" also snapshots that many seconds after the meeting ended (every
# endpoint gone), the last but one with profiles taken after a forced collection
# (heap?gc=1; the runtime collects on its own at the latest two minutes after the last
# collection): does the server return to its idle state?
#
# Per subscriber = (rss_kB at a snapshot - rss_kB idle) / peers at that snapshot. Run
# it in a network namespace with only loopback (ip netns add m; ip -n m link set lo up;
# ip netns exec m sfu/bench-mem.sh) where the host's interfaces change under you: each
# IPv4 address is one more ICE candidate, with its own goroutine, on every connection.
# GODEBUG=memprofilerate=16384 gives finer heap profiles. RSS is split into anonymous
# memory (heap, stacks, the runtime's) and file pages (the binary's code and data the
# run has touched, which grows as code runs for the first time and which the kernel can
# drop); smaps-*.txt beside the profiles map it.
set -eu
. "$(dirname "$0")/bench-serve.sh"
N=${1:-151}
OUT=${2:-$(mktemp -d)}
BIN=${CAU_BIN:-bin/cau}
HTTP=${BENCH_HTTP:-127.0.0.1:17990}
UDP=${BENCH_UDP:-17992}
DBG=${BENCH_DEBUG:-127.0.0.1:17960}
mkdir -p "$OUT"
export CAU_MAX_SOCKETS_PER_ADDR=${CAU_MAX_SOCKETS_PER_ADDR:-100000}
start_server 100 "$BIN" serve --dev --http "$HTTP" --udp-port "$UDP" --tcp-port -1 --log-level warn --debug-http "$DBG"
metric() { awk -v k="$1" '$1 == k { print $2 }' "$OUT/metrics-$2.txt"; }
snap() {
	curl -s "http://$HTTP/metrics" >"$OUT/metrics-$1.txt"
	if [ "${2:-}" = profile ]; then
		curl -s "http://$DBG/debug/pprof/heap${3:-}" >"$OUT/heap-$1.pb.gz"
		curl -s "http://$DBG/debug/pprof/goroutine?debug=1" >"$OUT/goroutine-$1.txt"
	fi
	[ "${2:-}" = profile ] && cp "/proc/$srv/smaps" "$OUT/smaps-$1.txt" 2>/dev/null
	# rss_kB = anon (heap, stacks, runtime) + file (the binary's pages the run has touched)
	echo "$1 peers=$(metric cau_bridge_peers "$1") rss_kB=$(awk '/^VmRSS/ { print $2 }' "/proc/$srv/status")" \
		"anon_kB=$(awk '/^RssAnon/ { print $2 }' "/proc/$srv/status") file_kB=$(awk '/^RssFile/ { print $2 }' "/proc/$srv/status")" \
		"goroutines=$(metric go_goroutines "$1") heap_inuse=$(metric go_memstats_heap_inuse_bytes "$1")" \
		"heap_alloc=$(metric go_memstats_heap_alloc_bytes "$1") stacks=$(metric go_memstats_stack_inuse_bytes "$1")" \
		"gcs=$(metric go_gc_duration_seconds_count "$1") load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/snaps.txt"
}
sleep 2
snap idle profile
"$BIN" loadtest --dev --url "http://$HTTP" --tree "" --endpoints "$N" --publishers 1 --media video \
	--video-kbps 2000 --fps 30 --duration 30s --ramp "${RAMP:-10/s}" --json "$OUT/load.json" --log-level warn >"$OUT/load.txt" 2>&1 &
lt=$!
for s in 15 20 25 30 35 40 45; do
	sleep 5
	if [ $s = 35 ]; then snap t$s profile; else snap t$s; fi
done
rc=0
wait $lt || rc=$?
prev=0
n=$(echo ${AFTER:-} | wc -w)
i=0
for s in ${AFTER:-}; do
	sleep $((s - prev))
	prev=$s
	i=$((i + 1))
	if [ $i = $((n - 1)) ]; then snap end+$s profile '?gc=1'; else snap end+$s; fi
done
grep -E "endpoints|join " "$OUT/load.txt" | head -2
grep -o '"memory_per_endpoint_bytes": *[0-9.e+-]*' "$OUT/load.json" || true
echo "loadtest exit $rc; profiles and snapshots in $OUT"
