#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && [ -x /usr/bin/deb-systemd-helper ]; then
	deb-systemd-helper mask cau.service cau-signal.service cau-bridge.service >/dev/null || true
fi
if [ "$1" = purge ]; then
	if [ -x /usr/bin/deb-systemd-helper ]; then
		deb-systemd-helper purge cau.service cau-signal.service cau-bridge.service >/dev/null || true
		deb-systemd-helper unmask cau.service cau-signal.service cau-bridge.service >/dev/null || true
	fi
	rm -rf /var/lib/cau /etc/cau
	if getent passwd cau >/dev/null; then
		deluser --system --quiet cau >/dev/null || true
	fi
	if getent group cau >/dev/null; then
		delgroup --system --quiet cau >/dev/null || true
	fi
fi
exit 0
