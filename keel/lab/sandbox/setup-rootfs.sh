#!/bin/sh
# Runs inside the debootstrapped rootfs (chroot) once per image build.
set -eu
# Host keys and machine-id are made per host at first boot, not baked in.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
# Root logs in with keys only; the key is copied in by `keel sandbox up`.
passwd -l root >/dev/null
install -d -m 0700 /root/.ssh
systemctl enable ssh.service keel-sshd-keygen.service >/dev/null
# Units that cannot work inside a container.
systemctl mask getty@tty1.service systemd-firstboot.service >/dev/null
# A privileged host's /proc/sys is writable and most keys are the machine's (kernel.*, fs.*):
# systemd's vendor sysctl files stay off; base writes only network-namespaced keys here.
for f in /usr/lib/sysctl.d/*.conf; do
    [ -e "$f" ] && ln -sf /dev/null "/etc/sysctl.d/${f##*/}"
done
update-ca-certificates >/dev/null
# Security and point updates at build time (sources.list: main, updates, security).
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
apt-get update -qq
apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
