#!/usr/bin/env bash
# Run a command in the stack's test bench: a container of the web nodes' Debian release with MariaDB, memcached,
# nginx and the locked requirements, and real servers started on its loopback (django_stack.testing).
# The container has no network (--network none): every byte the tests send stays on its loopback.
# Usage: scripts/app-test.sh pytest -q                       the shop's tests (app/)
#        APP_TEST_DIR=django_stack scripts/app-test.sh pytest -q   the package's own tests
#        (DEBIAN=12 for Debian 12)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${DEBIAN:-${LAB_DEBIAN_VERSION:-13}}"
workdir="${APP_TEST_DIR:-app}"
scripts/build-image.sh "$version" >/dev/null
hash="$(cat app/testing/Dockerfile app/requirements.txt app/requirements-test.txt | sha256sum | cut -c1-12)"
image="django-stack/apptest:${version}-${hash}"
if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "app-test: building $image (Debian $version, MariaDB, memcached, nginx, the locked requirements)"
  docker build --quiet --build-arg "BASE=django-stack/debian:${version}" -t "$image" -f app/testing/Dockerfile app >/dev/null
fi
project=()
[ -f "$workdir/testing/project.json" ] && project=(-e "STACK_TEST_PROJECT=@/repo/$workdir/testing/project.json")
tty=()
[ -t 0 ] && [ -t 1 ] && tty=(-it)
# The package from its source (django_stack/src), as a project that installed it would import it.
exec docker run --rm "${tty[@]}" --network none --tmpfs /tmp:exec,size=2g \
  -v "$PWD:/repo" -w "/repo/$workdir" -e "PYTHONPATH=/repo/$workdir:/repo/django_stack/src" -e STACK_TEST_KEEP \
  -e PYTHONDONTWRITEBYTECODE=1 "${project[@]}" "$image" python -m django_stack.testing -- "$@"
