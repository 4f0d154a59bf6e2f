"""Zero-downtime migration rules: renames, drops and narrowing are refused; additive changes pass."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, migrations, models
from django.db.migrations.loader import MigrationLoader

from django_stack.migrationrules import rules


@pytest.fixture
def state():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return loader.project_state()


def check(state, *operations):
    return rules.check_operations("catalog", "catalog.9999_test", operations, state, connections["default"])


def test_the_projects_migrations_follow_the_rules(capsys):
    call_command("check_migration_rules")
    assert "migration rules: ok" in capsys.readouterr().out


@pytest.mark.parametrize("operation,reason", [
    (migrations.RenameField("product", "name", "title"), "renames"),
    (migrations.RenameModel("Product", "Article"), "renames"),
    (migrations.AlterModelTable("product", "catalog_article"), "renames a table"),
    (migrations.AlterField("product", "name", models.CharField(max_length=200, db_column="title")), "renames column"),
    (migrations.RemoveField("product", "description"), "drops"),
    (migrations.DeleteModel("Product"), "drops"),
    (migrations.AlterField("product", "name", models.CharField(max_length=100)), "max_length 200 -> 100"),
    (migrations.AlterField("product", "price", models.DecimalField(max_digits=8, decimal_places=2)), "decimal"),
    (migrations.AlterField("product", "description", models.CharField(max_length=500, blank=True)), "narrows"),
    (migrations.AlterField("category", "position", models.PositiveSmallIntegerField(default=0)), "narrows"),
    (migrations.AddField("product", "weight", models.IntegerField()), "NOT NULL column without db_default"),
    (migrations.RunSQL("ALTER TABLE catalog_product DROP COLUMN description"), "drops a column"),
    # Nested: what SeparateDatabaseAndState runs on the database is judged.
    (migrations.SeparateDatabaseAndState(database_operations=[migrations.RemoveField("product", "description")]),
     "drops"),
    (migrations.SeparateDatabaseAndState(state_operations=[], database_operations=[
        migrations.RunSQL("ALTER TABLE catalog_product CHANGE name title varchar(200)")]), "renames"),
    # Raw SQL adding a NOT NULL column, or a uniqueness rule.
    (migrations.RunSQL("ALTER TABLE catalog_product ADD COLUMN weight int NOT NULL"), "NOT NULL column"),
    (migrations.RunSQL("ALTER TABLE catalog_product ADD COLUMN a int NULL, ADD UNIQUE (sku, name)"), "uniqueness"),
    (migrations.RunSQL("CREATE UNIQUE INDEX u ON catalog_product (name)"), "uniqueness"),
    # Uniqueness and check rules on an existing table.
    (migrations.AddConstraint("product", models.UniqueConstraint(fields=["name"], name="product_name_uniq")),
     "constraint"),
    (migrations.AddConstraint("product", models.CheckConstraint(condition=models.Q(price__gte=0),
                                                                name="product_price_positive")), "constraint"),
    (migrations.AddField("product", "code", models.CharField(max_length=20, null=True, unique=True)), "unique"),
    (migrations.AlterField("product", "name", models.CharField(max_length=200, unique=True)), "uniqueness"),
    (migrations.AlterUniqueTogether("product", {("category", "name")}), "uniqueness"),
    # Changes that make MariaDB copy the table, blocking writes.
    (migrations.AlterField("category", "position", models.PositiveBigIntegerField(default=0)), "copy the table"),
    (migrations.AlterField("product", "sku", models.TextField()), "copy the table"),
    (migrations.AlterField("product", "price", models.DecimalField(max_digits=12, decimal_places=2)), "copy"),
    (migrations.AlterField("product", "sku", models.CharField(max_length=64)), "length prefix"),
    # A data migration needs the migration's word that it is safe.
    (migrations.RunPython(migrations.RunPython.noop), "zero_downtime_runpython"),
])
def test_breaking_operations_are_refused(state, operation, reason):
    found = check(state, operation)
    assert found and reason in found[0].reason, found


@pytest.mark.parametrize("operation", [
    migrations.AddField("product", "subtitle", models.CharField(max_length=100, blank=True, default="", null=True)),
    migrations.AddField("product", "stock", models.IntegerField(db_default=0)),
    migrations.AlterField("product", "name", models.CharField(max_length=300)),
    migrations.AlterField("product", "sku", models.CharField(max_length=63)),
    migrations.AlterField("product", "description", models.TextField(blank=True, null=True)),
    migrations.AddIndex("product", models.Index(fields=["name"], name="product_name_idx")),
    migrations.CreateModel("Review", [("id", models.BigAutoField(primary_key=True)),
                                      ("text", models.TextField())]),
])
def test_additive_operations_pass(state, operation):
    assert check(state, operation) == []


def test_state_follows_the_operations(state):
    # Widen, then narrow back to the original width: the second step is judged against the widened column.
    found = check(state,
                  migrations.AlterField("product", "name", models.CharField(max_length=300)),
                  migrations.AlterField("product", "name", models.CharField(max_length=200)))
    assert len(found) == 1 and "300 -> 200" in found[0].reason


def test_the_command_refuses_a_breaking_migration_unless_marked_contract(tmp_path, settings, monkeypatch):
    package = tmp_path / "sample_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "0001_initial.py").write_text(
        "from django.db import migrations, models\n"
        "class Migration(migrations.Migration):\n"
        "    initial = True\n"
        "    operations = [migrations.CreateModel('Thing', [('id', models.BigAutoField(primary_key=True)),"
        " ('label', models.CharField(max_length=50))])]\n")
    (package / "0002_rename.py").write_text(
        "from django.db import migrations\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('cart', '0001_initial')]\n"
        "    operations = [migrations.RenameField('thing', 'label', 'title')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.MIGRATION_MODULES = {"cart": "sample_migrations"}
    with pytest.raises(CommandError, match="zero-downtime"):
        call_command("check_migration_rules", "cart")
    contract = package / "0002_rename.py"
    contract.write_text(contract.read_text().replace(
        "    operations", "    zero_downtime_contract = 'label unused since 2026.10, reviewed'\n    operations"))
    import importlib
    import sys
    sys.modules.pop("sample_migrations.0002_rename", None)
    importlib.invalidate_caches()
    call_command("check_migration_rules", "cart")


def test_runpython_passes_with_its_marker(state):
    found = rules.check_operations("catalog", "catalog.9999_test", [migrations.RunPython(migrations.RunPython.noop)],
                                   state, connections["default"], runpython_allowed=True)
    assert found == []


@pytest.mark.parametrize("old,new", [
    ("int NOT NULL", "bigint NOT NULL"),
    ("smallint NOT NULL", "int NOT NULL"),
    ("int NOT NULL", "int unsigned NOT NULL"),
    ("decimal(10,2) NOT NULL", "decimal(12,2) NOT NULL"),
    ("varchar(200) NOT NULL", "longtext NOT NULL"),
    ("varchar(40) NOT NULL", "varchar(64) NOT NULL"),
    ("varchar(40) NOT NULL", "varchar(63) NOT NULL"),
    ("varchar(200) NOT NULL", "varchar(300) NOT NULL"),
    ("int NOT NULL", "int NULL"),
])
def test_the_table_copy_rule_is_what_mariadb_does(old, new):
    """The rule says which column changes make MariaDB copy the table; the real server is asked the same: an
    ALTER with LOCK=NONE (writes go on) is refused exactly when the rule says the table is copied."""
    from django.db import DatabaseError

    base = lambda t: t.replace(" NOT NULL", "").replace(" NULL", "")  # noqa: E731
    expected_copy = rules.copies_table(base(old), base(new)) is not None
    with connections["default"].cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS zz_rules_probe")
        cursor.execute(f"CREATE TABLE zz_rules_probe (id bigint PRIMARY KEY AUTO_INCREMENT, c {old}) ENGINE=InnoDB "
                       "DEFAULT CHARSET=utf8mb4")
        cursor.execute("INSERT INTO zz_rules_probe (c) VALUES (1)")
        try:
            cursor.execute(f"ALTER TABLE zz_rules_probe MODIFY c {new}, ALGORITHM=INPLACE, LOCK=NONE")
            online = True
        except DatabaseError as exc:
            assert exc.args[0] in (1845, 1846), exc  # ALGORITHM/LOCK not supported for this operation
            online = False
        finally:
            cursor.execute("DROP TABLE IF EXISTS zz_rules_probe")
    assert online == (not expected_copy), f"{old} -> {new}: MariaDB online={online}, rule copy={expected_copy}"
