#!/usr/bin/env bash
# Make sure a container engine answers. On a Debian host without one, running as root: install Debian's
# docker.io and start dockerd in the background. Anywhere else: say what is missing.
set -euo pipefail
if docker info >/dev/null 2>&1; then
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
