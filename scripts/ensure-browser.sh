#!/usr/bin/env bash
# Make sure a headless browser is on this machine for the console page's test (molecule default): Debian's
# chromium, installed where it is missing when running as root on Debian; anywhere else, say what is missing.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-browser: no chromium on this machine; install Debian's chromium package." >&2
  exit 1
fi
echo "ensure-browser: installing Debian's chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
