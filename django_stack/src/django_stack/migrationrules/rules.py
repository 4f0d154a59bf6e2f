"""The zero-downtime migration rules.

During a rolling deploy the old release keeps serving while the new release's migrations run, so every
migration must leave a schema that the old code still works with ("expand"). These break it, and are refused:

- renaming a column or a table (``RenameField``, ``RenameModel``, ``AlterModelTable``, a changed ``db_column``):
  the old code queries the old name;
- dropping a column or a table (``RemoveField``, ``DeleteModel``): the old code still reads and writes it;
- narrowing a column (shorter ``max_length``, fewer digits, a smaller integer type, NULL to NOT NULL, or any
  other type change that is not a known widening): old code writes values the column no longer takes;
- adding a NOT NULL column without a database default (``db_default``): old code inserts rows without it;
- adding a uniqueness or check rule to an existing table (``AddConstraint``, ``unique=True`` on a new or changed
  column, ``AlterUniqueTogether``): the running release may write rows that break it, and building it fails on
  rows that already do;
- a column change that makes MariaDB copy the table, blocking writes for the whole copy (``ALGORITHM=COPY``):
  any type change except a ``varchar`` widened within the same length-prefix size (both at most 63 or both at
  least 64 utf8mb4 characters), e.g. int -> bigint, decimal precision, varchar -> text, signedness;
- ``RunPython`` without an explicit marker on its migration (``zero_downtime_runpython = "why it is safe"``): a
  data migration can lock or rewrite a table, which no rule can see;
- raw SQL that drops, renames or modifies columns, or adds a NOT NULL column without a default, or a uniqueness
  or check rule.

Nested operations are judged as well (``SeparateDatabaseAndState``'s database operations), and beyond the
operations themselves, the SQL each one makes (what ``sqlmigrate`` prints, the way django-migration-linter judges
migrations) is judged by the same rules, so an operation of a third-party library is not a way around them.

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
RUNPYTHON_ATTRIBUTE = "zero_downtime_runpython"
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


def copies_table(old_type: str, new_type: str) -> str | None:
    """Why MariaDB (InnoDB, utf8mb4) copies the table to change a column from ``old_type`` to ``new_type``,
    blocking writes meanwhile, or None when it changes it in place. Proven against the real server by the tests."""
    old_type, new_type = old_type.lower().strip(), new_type.lower().strip()
    if old_type == new_type:
        return None
    old_len, new_len = _varchar_length(old_type), _varchar_length(new_type)
    if old_len is not None and new_len is not None and new_len >= old_len:
        # The length prefix is 1 byte up to 255 bytes (63 characters of 4 bytes), 2 bytes beyond.
        if (old_len * 4 <= 255) == (new_len * 4 <= 255):
            return None
        return f"varchar({old_len}) -> varchar({new_len}) changes the length prefix"
    return f"type {old_type} -> {new_type}"


# Clauses of ALTER TABLE (split at top-level commas) and statements, judged on the SQL a migration makes.
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+\S+\s+(?P<clauses>.*)$", re.IGNORECASE | re.DOTALL)
_DROP_COLUMN = re.compile(r"^DROP\s+(COLUMN\s+)?(?!(INDEX|KEY|FOREIGN|PRIMARY|CONSTRAINT|CHECK|DEFAULT|PARTITION)\b)\S+",
                          re.IGNORECASE)
_ADD_COLUMN = re.compile(r"^ADD\s+(COLUMN\s+)?(?!(INDEX|KEY|FOREIGN|PRIMARY|CONSTRAINT|CHECK|UNIQUE|FULLTEXT|SPATIAL)\b)",
                         re.IGNORECASE)
_ADD_RULE = re.compile(r"^ADD\s+(CONSTRAINT\s+(`[^`]*`|\S+)\s+)?(UNIQUE|CHECK)\b", re.IGNORECASE)


def _clauses(text: str) -> list[str]:
    parts, depth, current, quote = [], 0, [], None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
            continue
        if char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def judge_sql(statement: str, *, raw: bool) -> list[str]:
    """Why ``statement`` breaks the rules (empty when it does not). ``raw``: written by hand (RunSQL), where a
    MODIFY or CHANGE cannot be judged; Django's own MODIFY is judged on the operation (type, NULL)."""
    sql = " ".join(statement.split())
    upper = sql.upper()
    reasons = []
    if re.match(r"^(DROP\s+TABLE|TRUNCATE|RENAME\s+TABLE)\b", upper):
        reasons.append("drops, empties or renames a table that the running release still uses")
    if re.match(r"^CREATE\s+UNIQUE\s+INDEX\b", upper):
        reasons.append("adds a uniqueness rule to an existing table")
    match = _ALTER.match(sql)
    if match:
        for clause in _clauses(match.group("clauses")):
            head = clause.upper()
            if _DROP_COLUMN.match(clause):
                reasons.append("drops a column that the running release still uses")
            elif re.match(r"^(RENAME|CHANGE)\b", head):
                reasons.append("renames a column or table that the running release still uses")
            elif _ADD_RULE.match(clause):
                reasons.append("adds a uniqueness or check rule to an existing table")
            elif _ADD_COLUMN.match(clause):
                if re.search(r"\bNOT\s+NULL\b", head) and not re.search(r"\bDEFAULT\b", head):
                    reasons.append("adds a NOT NULL column without a default: the running release inserts without it")
                if re.search(r"\bUNIQUE\b", head):
                    reasons.append("adds a unique column to an existing table")
            elif raw and re.match(r"^MODIFY\b", head):
                reasons.append("raw SQL that modifies a column cannot be checked")
    elif raw and _RAW_SQL.search(sql) and not reasons:
        reasons.append("raw SQL that drops, renames or modifies schema")
    return reasons


def _collected_sql(app_label, operation, state, connection) -> list[str]:
    """The SQL ``operation`` makes on this database (``sqlmigrate``'s), from ``state``."""
    after = state.clone()
    operation.state_forwards(app_label, after)
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        operation.database_forwards(app_label, editor, state, after)
    return list(editor.collected_sql)


def _raw_statements(operation) -> list[str]:
    sql = operation.sql
    items = [sql] if isinstance(sql, str) else [s[0] if isinstance(s, (list, tuple)) else s for s in sql]
    statements = []
    for item in items:
        statements.extend(part for part in (p.strip() for p in str(item).split(";")) if part)
    return statements


def check_operations(app_label: str, label: str, operations, state, connection, *,
                     runpython_allowed: bool = False) -> list[Violation]:
    """Check ``operations`` of app ``app_label``, applied in order from ``state`` (the ProjectState before)."""
    found = []
    state = state.clone()

    def refuse(operation, reason):
        violation = Violation(label, operation.describe(), reason)
        if violation not in found:
            found.append(violation)

    for operation in operations:
        refused_before = len(found)
        if isinstance(operation, migrations.SeparateDatabaseAndState):
            # What runs on the database is judged; the state operations only change Django's view of it.
            found.extend(v for v in check_operations(app_label, label, operation.database_operations, state,
                                                     connection, runpython_allowed=runpython_allowed)
                         if v not in found)
            operation.state_forwards(app_label, state)
            continue
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
                else:
                    why = copies_table(old_type, new_type)
                    if why:
                        refuse(operation, f"makes MariaDB copy the table, blocking writes until it is done ({why})")
            if old_field.null and not new_field.null:
                refuse(operation, "makes the column NOT NULL")
            if new_field.unique and not old_field.unique and not new_field.primary_key:
                refuse(operation, "adds a uniqueness rule to an existing column")
        elif isinstance(operation, migrations.AddField):
            field = operation.field
            has_db_default = getattr(field, "db_default", None) is not None and not _is_not_provided(field.db_default)
            if not field.null and not has_db_default and not field.many_to_many:
                refuse(operation, "adds a NOT NULL column without db_default: the running release inserts without it")
            if field.unique:
                refuse(operation, "adds a unique column to an existing table")
        elif isinstance(operation, migrations.AddConstraint):
            refuse(operation, "adds a constraint to an existing table: the running release may write rows that "
                              "break it, and building it fails on rows that already do")
        elif isinstance(operation, migrations.AlterUniqueTogether):
            model = state.apps.get_model(app_label, operation.name)
            before = {tuple(u) for u in model._meta.unique_together}
            if set(map(tuple, operation.unique_together or ())) - before:
                refuse(operation, "adds a uniqueness rule to an existing table")
        elif isinstance(operation, migrations.RunPython):
            if not runpython_allowed:
                refuse(operation, f"RunPython: say why it is safe while the old release runs "
                                  f"({RUNPYTHON_ATTRIBUTE} = '...' on the migration)")
        if isinstance(operation, migrations.RunSQL):
            for statement in _raw_statements(operation):
                for reason in judge_sql(statement, raw=True):
                    refuse(operation, reason)
        elif len(found) == refused_before and not isinstance(operation, (migrations.RunPython, migrations.CreateModel)):
            # The SQL this operation makes, judged as sqlmigrate would print it (a new table is never a risk).
            try:
                statements = _collected_sql(app_label, operation, state, connection)
            except Exception as exc:  # noqa: BLE001 - an operation whose SQL cannot be made is reported
                refuse(operation, f"its SQL could not be made to be checked ({exc})")
                statements = []
            for statement in statements:
                for reason in judge_sql(statement, raw=False):
                    refuse(operation, reason)
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
        found = check_operations(app_label, label, migration.operations, state, connection,
                                 runpython_allowed=bool(getattr(migration, RUNPYTHON_ATTRIBUTE, None)))
        if found and getattr(migration, CONTRACT_ATTRIBUTE, None):
            contracts.append(f"{label}: contract step ({getattr(migration, CONTRACT_ATTRIBUTE)})")
            continue
        violations.extend(found)
    return violations, contracts
