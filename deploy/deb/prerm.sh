#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	deb-systemd-invoke stop cau.service cau-signal.service cau-bridge.service >/dev/null || true
fi
exit 0
