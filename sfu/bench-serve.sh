# shellcheck shell=sh
# Sourced by the sfu/bench-*.sh scripts: the one way they start the server they measure.
#
# start_server TRIES CMD...: runs CMD (a `cau serve`) in the background with its output in
# $OUT/serve.log, sets $srv to its pid, kills it when the script exits, and waits up to
# TRIES tenths of a second for http://$HTTP/healthz to answer; the script exits 1 if it
# never does.
start_server() {
	tries=$1
	shift
	"$@" >"$OUT/serve.log" 2>&1 &
	srv=$!
	trap 'kill $srv 2>/dev/null || true' EXIT INT TERM
	i=0
	until curl -sf "http://$HTTP/healthz" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt "$tries" ] || { echo "server did not start; see $OUT/serve.log"; exit 1; }
		sleep 0.1
	done
}
