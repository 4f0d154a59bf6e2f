#!/usr/bin/env python3
"""Each role's interface has one source, meta/argument_specs.yml; this checks the rest against it.

    scripts/role-interface.py            check every role (make lint): exit 1 on a disagreement
    scripts/role-interface.py --write    regenerate each README's variable table from the spec

Checked for every role:
- each variable of defaults/main.yml is an option of the spec, with the same default (``default:``);
- each option of the spec has a default in defaults/main.yml, or is ``required: true`` and has none there
  (a secret with no meaningful default: a run without it stops before any change);
- each secret (a name with password, secret or _pem) is ``no_log: true``;
- each dict option either lists its ``options:`` or says it is free-form (its description says "mapping");
- the README's table (between the BEGIN/END VARIABLES markers) is the one generated from the spec.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN VARIABLES (scripts/role-interface.py --write) -->", "<!-- END VARIABLES -->"
SECRET = re.compile(r"password|secret|_pem$")


def text(description) -> str:
    if isinstance(description, list):
        description = " ".join(description)
    return " ".join(str(description or "").split())


def cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return f"`{cell(value)}`" if value else '`""`'
    return f"`{cell(json.dumps(value))}`"


def rows(options: dict, prefix: str = "") -> list[str]:
    out = []
    for name, spec in options.items():
        kind = spec.get("type", "str")
        if spec.get("elements"):
            kind += f" of {spec['elements']}"
        default = "required" if spec.get("required") else shown(spec.get("default"))
        if spec.get("choices"):
            kind += " (" + ", ".join(str(c) for c in spec["choices"]) + ")"
        out.append(f"| `{prefix}{name}` | {kind} | {default} | {cell(text(spec.get('description')))} |")
        if spec.get("options"):
            out.extend(rows(spec["options"], prefix=f"{prefix}{name}."))
    return out


def table(options: dict) -> str:
    return "\n".join(["| Variable | Type | Default | Meaning |", "| --- | --- | --- | --- |", *rows(options)])


def check_role(role: Path, write: bool) -> list[str]:
    problems = []
    spec_path = role / "meta" / "argument_specs.yml"
    options = yaml.safe_load(spec_path.read_text())["argument_specs"]["main"].get("options") or {}
    defaults_path = role / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_path.read_text()) or {}) if defaults_path.exists() else {}
    for name, value in defaults.items():
        if options.get(name, {}).get("required"):
            problems.append(f"{role.name}: {name} is required in the spec: it has no place in defaults/main.yml")
        elif name not in options:
            problems.append(f"{role.name}: {name} is in defaults/main.yml but not in meta/argument_specs.yml")
        elif "default" not in options[name]:
            problems.append(f"{role.name}: {name} has no default in meta/argument_specs.yml "
                            f"(defaults/main.yml: {value!r})")
        elif options[name]["default"] != value:
            problems.append(f"{role.name}: {name}: default {options[name]['default']!r} in the spec, "
                            f"{value!r} in defaults/main.yml")
    for name, spec in options.items():
        if name not in defaults and not spec.get("required"):
            problems.append(f"{role.name}: {name} is in the spec but has no default and is not required")
        if SECRET.search(name) and not spec.get("no_log"):
            problems.append(f"{role.name}: {name} is a secret: give it no_log: true")
        if spec.get("type") == "dict" and not spec.get("options") and "mapping" not in text(spec.get("description")):
            problems.append(f"{role.name}: {name} is a dict: list its options, or describe it as a free-form mapping")
        if not text(spec.get("description")):
            problems.append(f"{role.name}: {name} has no description")
    readme = role / "README.md"
    content = readme.read_text()
    generated = f"{BEGIN}\n{table(options)}\n{END}"
    match = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), content, flags=re.S)
    if write:
        content = content[:match.start()] + generated + content[match.end():] if match else \
            content.rstrip() + "\n\n## Variables\n\n" + generated + "\n"
        readme.write_text(content)
    elif not match:
        problems.append(f"{role.name}: README.md has no generated variable table (scripts/role-interface.py --write)")
    elif match.group(0) != generated:
        problems.append(f"{role.name}: README.md's variable table is not the spec's (scripts/role-interface.py --write)")
    return problems


def main(argv: list[str]) -> int:
    write = "--write" in argv
    problems = []
    for role in sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml")):
        problems += check_role(role, write)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
