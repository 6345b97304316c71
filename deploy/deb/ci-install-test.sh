#!/usr/bin/env bash
# Installs the .deb on this (clean, root) machine, starts Cầu as cau.service would, checks
# /healthz, stops it and purges the package. Run by .ci/run after `make package`:
#   deploy/deb/ci-install-test.sh dist/cau_*.deb
#
# systemd is not PID 1 on the CI machines (nor in containers), so `systemctl start`
# cannot run there. Then this script says so and starts the unit's ExecStart itself,
# the way systemd would: as the unit's user, with its EnvironmentFile, WorkingDirectory
# and ambient capability (setpriv). With systemd running it uses systemctl.
#
# CAU_DEB_TEST_ENV may hold extra VAR=value settings for the started service (a shared
# developer machine: other ports), appended to /etc/cau/cau.env for the test.
set -euo pipefail
deb=${1:?usage: $0 dist/cau_VERSION_ARCH.deb}
fail() { echo "deb test: FAIL: $*" >&2; exit 1; }
say() { echo "deb test: $*"; }

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "$(readlink -f "$deb")" >/dev/null || fail "apt-get install $deb"
say "installed $(dpkg-query -W -f='${Package} ${Version}' cau)"

# What the package must have put in place.
[ -x /usr/bin/cau ] || fail "/usr/bin/cau missing"
getent passwd cau >/dev/null || fail "system user cau missing"
for u in cau cau-signal cau-bridge; do
	[ -f /lib/systemd/system/$u.service ] || fail "$u.service missing"
done
[ "$(stat -c '%U:%G %a' /etc/cau/cau.env)" = "root:cau 640" ] || fail "/etc/cau/cau.env: $(stat -c '%U:%G %a' /etc/cau/cau.env), want root:cau 640"
grep -q '^CAU_TOKEN_KEY=[0-9a-f]\{64\}$' /etc/cau/cau.env || fail "no generated token key"
[ "$(stat -c '%U' /var/lib/cau)" = cau ] || fail "/var/lib/cau not owned by cau"
grep -q '^net.core.rmem_max = 4194304$' /usr/lib/sysctl.d/60-cau.conf || fail "socket buffer limits (60-cau.conf) missing"
if command -v systemd-analyze >/dev/null; then
	# Offline checks of the units (bad directives, unsafe settings).
	for u in cau cau-signal cau-bridge; do
		systemd-analyze verify /lib/systemd/system/$u.service 2>&1 | grep -v -e 'Cannot add dependency job' -e 'Failed to put bus name' -e 'network-online.target' || true
	done
fi
if [ -n "${CAU_DEB_TEST_ENV:-}" ]; then
	printf '%s\n' $CAU_DEB_TEST_ENV >> /etc/cau/cau.env
fi
port=$(sed -n 's/^CAU_HTTP_ADDR=.*:\([0-9]*\)$/\1/p' /etc/cau/cau.env | tail -1)
port=${port:-$(sed -n 's/^http_addr: *"\{0,1\}[^:]*:\([0-9]*\)"\{0,1\}$/\1/p' /etc/cau/cau.yaml)}

healthz() {
	# bash's /dev/tcp: no curl needed on a clean machine.
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	local reply
	reply=$(cat <&3)
	exec 3<&-
	[[ "$reply" == *" 200 "* && "$reply" == *ok* ]]
}

pid=""
if [ -d /run/systemd/system ] && systemctl is-system-running >/dev/null 2>&1; then
	systemctl daemon-reload
	systemctl start cau.service
	say "started cau.service with systemctl"
else
	say "systemd is not running here (PID 1: $(ps -o comm= -p 1)); starting cau.service's ExecStart directly as user cau"
	unit=/lib/systemd/system/cau.service
	exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
	workdir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
	caps=$(sed -n 's/^AmbientCapabilities=CAP_//p' "$unit" | tr 'A-Z' 'a-z')
	setpriv_caps=()
	if [ -n "$caps" ]; then
		setpriv_caps=(--inh-caps "+$caps" --ambient-caps "+$caps" --bounding-set "-all,+$caps")
	fi
	(
		cd "$workdir"
		set -a
		# shellcheck disable=SC1091
		. /etc/cau/cau.env
		set +a
		# shellcheck disable=SC2086
		exec setpriv --reuid cau --regid cau --init-groups "${setpriv_caps[@]}" $exec_start
	) > /tmp/cau-deb-test.log 2>&1 &
	pid=$!
fi

ok=""
for _ in $(seq 1 100); do
	if healthz 2>/dev/null; then ok=1; break; fi
	sleep 0.2
done
if [ -z "$ok" ]; then
	cat /tmp/cau-deb-test.log 2>/dev/null || journalctl -u cau --no-pager | tail -50 || true
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	fail "/healthz did not answer on port $port"
fi
say "/healthz answered on port $port"
if [ -n "$pid" ]; then
	[ "$(ps -o user= -p "$(pgrep -P "$pid" -x cau || echo "$pid")" 2>/dev/null | tr -d ' ')" = cau ] || \
		[ "$(ps -o user= -C cau | head -1 | tr -d ' ')" = cau ] || fail "the service does not run as user cau"
	kill -TERM "$pid"
	wait "$pid" && rc=0 || rc=$?
	[ "$rc" = 0 ] || { cat /tmp/cau-deb-test.log; fail "cau exited with status $rc after SIGTERM"; }
	say "stopped (SIGTERM, exit status 0)"
else
	systemctl stop cau.service
	say "stopped cau.service"
fi

apt-get purge -y -qq cau >/dev/null || fail "apt-get purge cau"
[ ! -e /usr/bin/cau ] || fail "/usr/bin/cau left after purge"
[ ! -e /etc/cau ] || fail "/etc/cau left after purge"
[ ! -e /var/lib/cau ] || fail "/var/lib/cau left after purge"
! getent passwd cau >/dev/null || fail "user cau left after purge"
say "purged: binary, config, data and user gone"
say "PASS"
