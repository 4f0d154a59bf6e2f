#!/usr/bin/env bash
# Build (or pull) a Debian base image with systemd as PID 1 and python3, for the lab and molecule.
# Usage: scripts/build-image.sh 13|12
# A registry is tried first (a laptop can reach it); without one, the image is built from Debian's archive
# with debootstrap and imported. Either way the host's extra CA certificates are trusted inside the image,
# so pip behind a TLS-intercepting proxy works on the nodes.
set -euo pipefail

version="${1:-13}"
case "$version" in
  13) suite=trixie ;;
  12) suite=bookworm ;;
  *) echo "build-image: unknown Debian version '$version' (use 13 or 12)" >&2; exit 2 ;;
esac
image="${LAB_IMAGE_PREFIX:-django-stack/debian}:${version}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,iproute2,procps,sudo,less,gnupg"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "build-image: $image already present"
  exit 0
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# Extra CA certificates of this host (a proxy's CA, say): copied into the image and trusted there.
mkdir -p "$workdir/ca"
if [ -d /usr/local/share/ca-certificates ]; then
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$workdir/ca/" \;
fi

# Run inside the new root (chroot or docker build): what a container with systemd as PID 1 needs, and trust
# of the host's extra CA certificates. No getty, no units that need a kernel of their own.
cat >"$workdir/setup.sh" <<SETUP
set -e
update-ca-certificates >/dev/null
systemctl mask getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \\
  systemd-modules-load.service sys-kernel-debug.mount sys-kernel-tracing.mount systemd-remount-fs.service \\
  systemd-firstboot.service >/dev/null 2>&1
rm -f /etc/machine-id /var/lib/dbus/machine-id && touch /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/*
# Package lists are dropped to keep the image small: mark them stale so the first apt run refreshes them.
touch -d 2000-01-01 /var/lib/apt/lists
SETUP

if [ "${LAB_PULL:-auto}" != never ] && timeout 60 docker pull "debian:${suite}" >/dev/null 2>&1; then
  echo "build-image: building $image from the registry's debian:${suite}"
  cat >"$workdir/Dockerfile" <<DOCKERFILE
FROM debian:${suite}
COPY ca/ /usr/local/share/ca-certificates/
COPY setup.sh /tmp/setup.sh
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(echo "$packages" | tr , ' ') && sh /tmp/setup.sh && rm /tmp/setup.sh
ENV container=docker
CMD ["/sbin/init"]
DOCKERFILE
  docker build -t "$image" "$workdir"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  else
    echo "build-image: no registry reachable and no debootstrap; install debootstrap (Debian)" >&2
    exit 1
  fi
fi
echo "build-image: no registry reachable; building $image with debootstrap from $mirror (a few minutes)"
rootfs="$workdir/rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror"
cp "$workdir"/ca/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
security="http://deb.debian.org/debian-security ${suite}-security main"
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s\n' "$mirror" "$suite" "$mirror" "$suite" "$security" \
  >"$rootfs/etc/apt/sources.list"
chroot "$rootfs" /bin/sh -e <"$workdir/setup.sh"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/sbin/init"]' \
  - "$image"
echo "build-image: $image built"
