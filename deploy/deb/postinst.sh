#!/bin/sh
# Runs after install and upgrade. Works without a running systemd (containers, CI):
# deb-systemd-helper and deb-systemd-invoke do nothing when /run/systemd/system is absent.
set -e
if ! getent passwd cau >/dev/null; then
	adduser --system --group --home /var/lib/cau --no-create-home --quiet cau
fi
install -d -o cau -g cau -m 0750 /var/lib/cau
chown root:cau /etc/cau /etc/cau/cau.yaml /etc/cau/bridge.env
chmod 0750 /etc/cau
# Secrets: generated once, readable by the service only, never overwritten.
if [ ! -e /etc/cau/cau.env ]; then
	umask 027
	{
		echo "# Generated at install. CAU_TOKEN_KEY signs join links (cau token reads it too)."
		echo "CAU_TOKEN_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
		echo "CAU_TURN_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
	} > /etc/cau/cau.env
	chown root:cau /etc/cau/cau.env
	chmod 0640 /etc/cau/cau.env
fi
if [ -x /usr/bin/deb-systemd-helper ]; then
	deb-systemd-helper unmask cau.service >/dev/null || true
	if deb-systemd-helper --quiet was-enabled cau.service; then
		deb-systemd-helper enable cau.service >/dev/null || true
	else
		deb-systemd-helper update-state cau.service >/dev/null || true
		deb-systemd-helper enable cau.service >/dev/null || true
	fi
	deb-systemd-helper update-state cau-signal.service cau-bridge.service >/dev/null || true
fi
# The socket buffer limits bridges need (60-cau.conf): applied now where the kernel lets
# this namespace change them; systemd-sysctl applies them at every boot.
if ! sysctl -q -p /usr/lib/sysctl.d/60-cau.conf >/dev/null 2>&1; then
	echo "cau: could not raise net.core.rmem_max/wmem_max here (container?); bridges log the buffer sizes they got" >&2
fi
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
	deb-systemd-invoke restart cau.service >/dev/null || true
fi
exit 0
