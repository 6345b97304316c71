#!/bin/sh
# bench-table: issue 11's whole table in one run (docs/benchmarks.md): 1 video publisher ×
# 50, 150, 300 and 500 at 2 Mbps (each between two floor runs, sfu/bench-load.sh), Gia
# Lai's 258 sites with two publishers at 250 kbps 15 fps and at 1 Mbps 30 fps, and the
# 258-site join storm twice back to back (sfu/bench-storm.sh).
#
#   sfu/bench-table.sh OUTDIR                     (make bench-table)
#
# SRV_CPUS and TST_CPUS (taskset -c lists) pin the server and the load tester, FLOOR_CPU the
# floor, so that on a larger machine the server gets the cores a small box has and the
# tester others (the device machine: server on 0,1, tester on 2-15). ROWS (default
# "51 151 301 501": endpoints), GLKBPS ("250 1000"; empty: none) and STORM (0: none) pick
# the rows. CAU_BIN (default bin/cau) serves and tests; BENCH_FLOOR_BIN runs the floor from
# a compiled test binary (go test -c ./sfu) where there is no Go. The row with
# PROF_ROW endpoints (151) also leaves a 10 s CPU profile of the server (cpu.pprof).
set -u
O=${1:?usage: sfu/bench-table.sh OUTDIR}
mkdir -p "$O"
BIN=$(realpath "${CAU_BIN:-bin/cau}")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# The wrappers exec, so that the pids the scripts kill and scrape are the servers'.
if [ -n "${SRV_CPUS:-}" ]; then
	n=$(echo "$SRV_CPUS" | tr ',' '\n' | wc -l)
	printf '#!/bin/sh\nexec taskset -c %s env GOMAXPROCS=%s %s "$@"\n' "$SRV_CPUS" "$n" "$BIN" >"$W/srv"
else
	printf '#!/bin/sh\nexec %s "$@"\n' "$BIN" >"$W/srv"
fi
if [ -n "${TST_CPUS:-}" ]; then
	printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' "$TST_CPUS" "$BIN" >"$W/tst"
else
	printf '#!/bin/sh\nexec %s "$@"\n' "$BIN" >"$W/tst"
fi
chmod +x "$W/srv" "$W/tst"
export CAU_BIN="$W/srv" CAU_TESTER_BIN="$W/tst" BENCH_FLOOR_CPUS="${FLOOR_CPU:-}"
export CAU_MAX_SOCKETS_PER_ADDR=100000 CAU_MAX_BRIDGE_PEERS=1000
echo "$(date -u) $(uname -r), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server cores ${SRV_CPUS:-any}, tester cores ${TST_CPUS:-any}, floor core ${FLOOR_CPU:-any}, $BIN"
for n in ${ROWS:-51 151 301 501}; do
	echo "=== 1 x $((n - 1)), 2 Mbps, 30 s: $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
	mkdir -p "$O/r$n"
	flags=""
	if [ "$n" = "${PROF_ROW:-151}" ]; then
		flags="--debug-http 127.0.0.1:16060"
		(sleep 15 && curl -s -o "$O/r$n/cpu.pprof" "http://127.0.0.1:16060/debug/pprof/profile?seconds=10") &
	fi
	BENCH_SERVE_FLAGS="$flags" BENCH_OUT="$O/r$n" timeout 240 sh sfu/bench-load.sh "$n" 30s 2>&1 |
		grep -v '^ *[0-9]*s \(ramp\|settle\|measure\)'
done
# Gia Lai: the docs' command, against a server on ports below the ephemeral range (a
# tester's port left from the row before once held one above it).
for kbps in ${GLKBPS-250 1000}; do
	fps=30
	[ "$kbps" -ge 1000 ] || fps=15
	echo "=== Gia Lai 258, 2 publishers, $kbps kbps $fps fps + audio, 30 s: $(date -u +%T)"
	g="$O/gialai-$kbps"
	mkdir -p "$g/data"
	CAU_DATA_DIR="$g/data" "$W/srv" serve --dev --sip off --http 127.0.0.1:17990 --udp-port 17992 --tcp-port -1 \
		--log-level warn >"$g/serve.log" 2>&1 &
	s=$!
	i=0
	until curl -sf http://127.0.0.1:17990/healthz >/dev/null 2>&1 || [ $i -gt 100 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	timeout 180 "$W/tst" loadtest --dev --url http://127.0.0.1:17990 --endpoints 258 --tree deploy/examples/gia-lai.yaml \
		--publishers 2 --video-kbps "$kbps" --fps "$fps" --duration 30s --ramp 20/s --json "$g/load.json" \
		--log-level warn >"$g/load.txt" 2>&1
	echo "loadtest exit $?"
	grep -v '^ *[0-9]*s \(ramp\|settle\|measure\)' "$g/load.txt" | tail -n 20
	kill $s
	wait $s 2>/dev/null
done
if [ "${STORM:-1}" != 0 ]; then
	echo "=== join storm: 258 at 50/s, twice: $(date -u +%T)"
	BENCH_OUT="$O/storm" timeout 240 sh sfu/bench-storm.sh 258 50/s 20s 2>&1 | tail -n 50
fi
echo "=== end $(date -u +%T)"
