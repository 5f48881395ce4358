#!/bin/sh
# Runs inside the debootstrapped rootfs (chroot) once per VM image build: turns minbase into
# what a Debian 12 cloud image is. Usage: setup-image.sh PACKAGE...
set -eu
export DEBIAN_FRONTEND=noninteractive
# Nothing starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
apt-get update
apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade
apt-get install -y --no-install-recommends "$@"
rm /usr/sbin/policy-rc.d
# cloud-init gives each instance its host name, host keys and machine-id at first boot.
rm -f /etc/ssh/ssh_host_*
: > /etc/hostname
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
passwd -l root >/dev/null
echo 'LABEL=keel-root / ext4 defaults,errors=remount-ro 0 1' > /etc/fstab
echo LANG=C.UTF-8 > /etc/default/locale
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
update-ca-certificates >/dev/null
# BIOS GRUB: the build embeds /tmp/core.img after the MBR; it loads /boot/grub/grub.cfg.
mkdir -p /boot/grub/i386-pc
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst /boot/grub/i386-pc/
grub-mkimage -O i386-pc -o /tmp/core.img -p '(hd0,msdos1)/boot/grub' biosdisk part_msdos ext2
cp /usr/lib/grub/i386-pc/boot.img /tmp/boot.img
apt-get clean
rm -rf /var/lib/apt/lists/*
