"""The zero-downtime migration rules.

During a rolling deploy the old release keeps serving while the new release's migrations run, so every
migration must leave a schema that the old code still works with ("expand"). These break it, and are refused:

- renaming a column or a table (``RenameField``, ``RenameModel``, ``AlterModelTable``, a changed ``db_column``):
  the old code queries the old name;
- dropping a column or a table (``RemoveField``, ``DeleteModel``): the old code still reads and writes it;
- narrowing a column (shorter ``max_length``, fewer digits, a smaller integer type, NULL to NOT NULL, or any
  other type change that is not a known widening): old code writes values the column no longer takes;
- adding a NOT NULL column without a database default (``db_default``): old code inserts rows without it;
- raw SQL that drops, renames or modifies columns.

The safe way: add the new column or table, deploy code that writes both and reads the new one, backfill, then
remove the old one in a later release as a reviewed *contract* step, a migration that says so::

    class Migration(migrations.Migration):
        zero_downtime_contract = "old column unused since release 2026.11; reviewed by <name>"

A contract migration is still listed, as allowed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from django.apps import apps as django_apps
from django.conf import settings
from django.db import connections, migrations
from django.db.migrations.loader import MigrationLoader

CONTRACT_ATTRIBUTE = "zero_downtime_contract"
_RAW_SQL = re.compile(r"\b(DROP|RENAME|CHANGE\s+COLUMN|MODIFY)\b", re.IGNORECASE)
_INTEGER_RANK = {"smallint": 1, "integer": 2, "int": 2, "bigint": 3}


@dataclass(frozen=True)
class Violation:
    migration: str
    operation: str
    reason: str

    def __str__(self):
        return f"{self.migration}: {self.operation}: {self.reason}"


def _varchar_length(db_type: str):
    match = re.fullmatch(r"varchar\((\d+)\)", db_type)
    return int(match.group(1)) if match else None


def _decimal(db_type: str):
    match = re.fullmatch(r"numeric\((\d+),\s*(\d+)\)", db_type) or re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", db_type)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _integer(db_type: str):
    base = db_type.split()[0]
    return _INTEGER_RANK.get(base), "unsigned" in db_type


def narrowing(old_type: str, new_type: str) -> str | None:
    """Why changing a column from ``old_type`` to ``new_type`` narrows it, or None if it does not."""
    old_type, new_type = old_type.lower().strip(), new_type.lower().strip()
    if old_type == new_type:
        return None
    old_len, new_len = _varchar_length(old_type), _varchar_length(new_type)
    if old_len is not None and new_len is not None:
        return f"max_length {old_len} -> {new_len}" if new_len < old_len else None
    if old_len is not None and new_type in ("longtext", "text", "mediumtext"):
        return None
    old_dec, new_dec = _decimal(old_type), _decimal(new_type)
    if old_dec and new_dec:
        (op, os_), (np, ns) = old_dec, new_dec
        if np - ns < op - os_ or ns < os_:
            return f"decimal({op},{os_}) -> decimal({np},{ns})"
        return None
    (old_rank, old_unsigned), (new_rank, new_unsigned) = _integer(old_type), _integer(new_type)
    if old_rank and new_rank:
        if new_rank < old_rank or old_unsigned != new_unsigned:
            return f"{old_type} -> {new_type}"
        return None
    return f"type {old_type} -> {new_type}"


def check_operations(app_label: str, label: str, operations, state, connection) -> list[Violation]:
    """Check ``operations`` of app ``app_label``, applied in order from ``state`` (the ProjectState before)."""
    found = []
    state = state.clone()

    def refuse(operation, reason):
        found.append(Violation(label, operation.describe(), reason))

    for operation in operations:
        if isinstance(operation, (migrations.RenameField, migrations.RenameModel)):
            refuse(operation, "renames a column or table that the running release still uses")
        elif isinstance(operation, migrations.AlterModelTable):
            refuse(operation, "renames a table that the running release still uses")
        elif isinstance(operation, (migrations.RemoveField, migrations.DeleteModel)):
            refuse(operation, "drops a column or table that the running release still uses")
        elif isinstance(operation, migrations.AlterField):
            old_field = state.apps.get_model(app_label, operation.model_name)._meta.get_field(operation.name)
            new_field = operation.field.clone()
            new_field.set_attributes_from_name(operation.name)
            if old_field.column != new_field.column:
                refuse(operation, f"renames column {old_field.column} to {new_field.column}")
            old_type, new_type = old_field.db_type(connection), new_field.db_type(connection)
            if old_type and new_type:
                why = narrowing(old_type, new_type)
                if why:
                    refuse(operation, f"narrows the column ({why})")
            if old_field.null and not new_field.null:
                refuse(operation, "makes the column NOT NULL")
        elif isinstance(operation, migrations.AddField):
            field = operation.field
            has_db_default = getattr(field, "db_default", None) is not None and not _is_not_provided(field.db_default)
            if not field.null and not has_db_default and not field.many_to_many:
                refuse(operation, "adds a NOT NULL column without db_default: the running release inserts without it")
        elif isinstance(operation, migrations.RunSQL):
            sql = operation.sql if isinstance(operation.sql, str) else " ".join(map(str, operation.sql))
            if _RAW_SQL.search(sql):
                refuse(operation, "raw SQL that drops, renames or modifies schema")
        operation.state_forwards(app_label, state)
    return found


def _is_not_provided(value) -> bool:
    from django.db.models.fields import NOT_PROVIDED

    return value is NOT_PROVIDED


def project_app_labels() -> set[str]:
    """The project's own apps (Django's and third-party apps have their own history)."""
    # Real paths, and never an installed package: a virtualenv may live inside (or be linked from) the project.
    base = os.path.realpath(settings.BASE_DIR) + os.sep
    return {
        config.label
        for config in django_apps.get_app_configs()
        if os.path.realpath(config.path).startswith(base) and "site-packages" not in config.path
    }


def check(app_labels=None, *, unapplied_only=False, database="default") -> tuple[list[Violation], list[str]]:
    """Check the migrations of ``app_labels`` (default: the project's apps); only unapplied ones if asked.

    Returns (violations, contract steps that were allowed).
    """
    connection = connections[database]
    if app_labels is None:
        app_labels = project_app_labels()
    loader = MigrationLoader(connection if unapplied_only else None, ignore_no_migrations=True)
    violations, contracts = [], []
    for key in loader.graph.nodes:
        app_label, name = key
        if app_label not in app_labels:
            continue
        if unapplied_only and key in loader.applied_migrations:
            continue
        migration = loader.graph.nodes[key]
        label = f"{app_label}.{name}"
        state = loader.project_state(key, at_end=False)
        found = check_operations(app_label, label, migration.operations, state, connection)
        if found and getattr(migration, CONTRACT_ATTRIBUTE, None):
            contracts.append(f"{label}: contract step ({getattr(migration, CONTRACT_ATTRIBUTE)})")
            continue
        violations.extend(found)
    return violations, contracts
