"""`make bench`: python -m bench [--quick] [--only ansible,ceiling,...] [--out bench/results]

Runs against the lab of inventories/lab (`make lab`). The "ansible" part, first, rebuilds that lab from scratch
to time a cold converge; leave it out (--only) to measure the lab as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import yaml

from .lab import ROOT, Lab, LabError, playbook
from .report import NINE_HOSTS_AGAIN, NINE_HOSTS_COLD, render
from .scenarios import Bench

PARTS = ("ansible", "ceiling", "strategies", "compression", "static", "lb_overhead", "monitoring", "faults", "routine",
         "converge_under_load", "deploys", "backups", "primary")


PLAIN_RUN = "site.yml again, nothing to change, Ansible's own strategies (no Mitogen)"
# The lab as issue 20 measured it, before the monitoring and backup hosts (and every host's agent and backup
# client) came: its nine hosts (bench/report.py's NINE_HOSTS), the same group_vars.
NINE_HOSTS_LEFT_OUT = ("backupservers", "monitoring")


def nine_host_inventory() -> Path:
    """The lab's inventory without its monitoring and backup groups, in a git-ignored folder: its hosts.yml with
    those groups left out, the same constructed names and group_vars."""
    lab, target = ROOT / "inventories" / "lab", ROOT / ".cache" / "bench-inventory-nine"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    hosts = yaml.safe_load((lab / "hosts.yml").read_text())
    for group in NINE_HOSTS_LEFT_OUT:
        hosts["lab"]["children"].pop(group)
    (target / "hosts.yml").write_text(yaml.safe_dump(hosts))
    shutil.copy(lab / "lab.constructed.yml", target / "lab.constructed.yml")
    (target / "group_vars").symlink_to(lab / "group_vars")
    return target


def ansible() -> list[dict]:
    """A cold converge of site.yml on fresh containers of the nine hosts issue 20 measured and a run with nothing
    to change; then the same on the whole lab, and that run again without Mitogen. It rebuilds the lab from
    scratch: the lab is disposable, and every later part then starts from the same state."""
    playbook("remove the lab", "playbooks/lab-down.yml")
    nine = str(nine_host_inventory())
    playbook("create fresh containers of the 9 hosts", "playbooks/lab-up.yml", "-i", nine)
    runs = [playbook(NINE_HOSTS_COLD, "site.yml", "-i", nine, profile=True),
            playbook(NINE_HOSTS_AGAIN, "site.yml", "-i", nine, profile=True)]
    playbook("remove the lab", "playbooks/lab-down.yml")
    playbook("create fresh containers", "playbooks/lab-up.yml")
    return [playbook("site.yml on fresh containers", "site.yml", profile=True),
            playbook("site.yml again, nothing to change", "site.yml", profile=True),
            # The control: the same run without Mitogen (ansible.cfg's strategy), a new interpreter per task.
            playbook(PLAIN_RUN, "site.yml", profile=True, environment={"ANSIBLE_STRATEGY": "linear"}),
            *runs]


def rebuild() -> None:
    """After the promotion the lab no longer matches its inventory: give the user back the lab `make lab` makes."""
    playbook("remove the promoted lab", "playbooks/lab-down.yml")
    playbook("create fresh containers", "playbooks/lab-up.yml")
    playbook("site.yml on fresh containers", "site.yml")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter loads (to try the harness out)")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    requested = {p for p in args.only.split(",") if p}
    unknown = requested - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    # Always in this order: "ansible" rebuilds the lab first, "primary" changes its topology last.
    parts = [p for p in PARTS if p in requested]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    lab = Lab()
    bench = Bench(lab, users=args.users, quick=args.quick)
    data = {"environment": {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "kernel": f"{platform.system()} {platform.release()}",
    }}
    if "ansible" in parts:
        data["ansible"] = ansible()
    print("bench: set-up (users, sessions, catalog URLs)", file=sys.stderr)
    data["environment"].update(bench.setup())
    try:
        for part in parts:
            if part == "ansible":
                continue
            print(f"bench: {part}", file=sys.stderr)
            data[part] = getattr(bench, part)()
            # Keep what was measured so far, should a later part fail.
            (out / "results.json").write_text(json.dumps(data, indent=1))
    finally:
        if "primary" in parts:
            rebuild()
    data["environment"]["duration_s"] = time.monotonic() - started
    (out / "results.json").write_text(json.dumps(data, indent=1))
    (out / "REPORT.md").write_text(render(data, out))
    print(f"bench: report in {out / 'REPORT.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
