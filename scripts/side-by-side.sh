#!/usr/bin/env bash
# Run commands side by side, each line of their output prefixed with the command's name; fail when any failed,
# after all have ended (none is stopped half way: a molecule scenario left half done is destroyed by its next run).
# Usage: scripts/side-by-side.sh NAME=COMMAND [NAME=COMMAND ...]     (each COMMAND runs in bash -c)
# `make test` runs its two lanes with it (Makefile): the work of one leaves idle the CPU that the other uses.
set -euo pipefail
cd "$(dirname "$0")/.."
(($#)) || { echo "usage: $0 NAME=COMMAND [NAME=COMMAND ...]" >&2; exit 2; }
# Python writes each line as it comes: the lines of both lanes are interleaved in the order they happened.
export PYTHONUNBUFFERED=1

for job in "$@"; do
  [[ $job =~ ^[^=]+=.+ ]] || { echo "side-by-side: not NAME=COMMAND: $job" >&2; exit 2; }
done

names=()
pids=()
for job in "$@"; do
  name=${job%%=*}
  command=${job#*=}
  # pipefail (set above): the lane's status is its command's, not the prefixing loop's.
  bash -c "$command" 2>&1 | while IFS= read -r line; do printf '%s | %s\n' "$name" "$line"; done &
  names+=("$name")
  pids+=($!)
done

failed=()
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then failed+=("${names[$i]}"); fi
done
if ((${#failed[@]})); then
  echo "side-by-side: failed: ${failed[*]}" >&2
  exit 1
fi
echo "side-by-side: passed: ${names[*]}"
