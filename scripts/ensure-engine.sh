#!/usr/bin/env bash
# Make sure a container engine answers. On a Debian host without one, running as root: install Debian's
# docker.io and start dockerd in the background. Anywhere else: say what is missing.
# Then make sure the kernel lets the lab's containers boot (inotify_instances below).
set -euo pipefail

# Every container of the lab runs systemd, and systemd and its services (journald, logind, udevd, the journal
# uploader, ...) hold about seven inotify instances per container, all counted against root's one limit
# (fs.inotify.max_user_instances, 128 by default): past about 16 containers (the default scenario's 13 and the db
# scenario's 7, side by side in `make test`), a container's systemd cannot start and docker restarts it over and
# over, and a running one loses services (CI saw both: a container "restarting" at create, a host unreachable).
# Raised here, as root, for this boot and the next ones (/etc/sysctl.d); not as root, a warning says how.
# playbooks/lab-up.yml refuses to create containers the limit cannot hold.
INOTIFY_INSTANCES=1024
inotify_instances() {
  local now
  # Not a Linux machine (the engine's kernel is elsewhere): nothing to read or raise here.
  [ -r /proc/sys/fs/inotify/max_user_instances ] || return 0
  now="$(cat /proc/sys/fs/inotify/max_user_instances)"
  ((now >= INOTIFY_INSTANCES)) && return 0
  if [ "$(id -u)" != 0 ]; then
    # Only a warning: the lab alone (11 containers) fits in Linux's default; lab-up.yml refuses what does not.
    echo "ensure-engine: fs.inotify.max_user_instances is $now, too low for make test's 20 containers at once" \
         "(lab-up.yml checks each lab); as root: sysctl -w fs.inotify.max_user_instances=$INOTIFY_INSTANCES" >&2
    return 0
  fi
  echo "ensure-engine: raising fs.inotify.max_user_instances from $now to $INOTIFY_INSTANCES (systemd in every container)"
  sysctl -q -w "fs.inotify.max_user_instances=$INOTIFY_INSTANCES"
  if [ -d /etc/sysctl.d ]; then
    echo "fs.inotify.max_user_instances = $INOTIFY_INSTANCES" >/etc/sysctl.d/60-django-stack-lab.conf
  fi
}

if docker info >/dev/null 2>&1; then
  inotify_instances
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-engine: no container engine answers ('docker info' failed)." >&2
  echo "ensure-engine: start Docker (or run this as root on Debian to have it installed)." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  echo "ensure-engine: installing Debian's docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start docker
  else
    echo "ensure-engine: starting dockerd in the background (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
docker info >/dev/null 2>&1 || { echo "ensure-engine: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
inotify_instances
