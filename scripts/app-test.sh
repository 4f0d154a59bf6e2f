#!/usr/bin/env bash
# Run a command in the app's test bench: a container of the web nodes' Debian release with MariaDB, memcached,
# nginx and the app's locked requirements, and real servers started on its loopback (app/testing/servers.py).
# The container has no network (--network none): every byte the tests send stays on its loopback.
# Usage: scripts/app-test.sh pytest -q          (DEBIAN=12 for Debian 12)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${DEBIAN:-${LAB_DEBIAN_VERSION:-13}}"
scripts/build-image.sh "$version" >/dev/null
hash="$(cat app/testing/Dockerfile app/requirements.txt app/requirements-test.txt | sha256sum | cut -c1-12)"
image="django-stack/apptest:${version}-${hash}"
if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "app-test: building $image (Debian $version, MariaDB, memcached, nginx, the app's requirements)"
  docker build --quiet --build-arg "BASE=django-stack/debian:${version}" -t "$image" -f app/testing/Dockerfile app >/dev/null
fi
tty=()
[ -t 0 ] && [ -t 1 ] && tty=(-it)
exec docker run --rm "${tty[@]}" --network none --tmpfs /tmp:exec,size=2g \
  -v "$PWD/app:/src" -w /src -e PYTHONPATH=/src -e SHOP_TEST_KEEP \
  "$image" python -m testing.servers -- "$@"
