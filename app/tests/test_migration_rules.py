"""Zero-downtime migration rules: renames, drops and narrowing are refused; additive changes pass."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, migrations, models
from django.db.migrations.loader import MigrationLoader

from migrationrules import rules


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
    (migrations.RunSQL("ALTER TABLE catalog_product DROP COLUMN description"), "raw SQL"),
])
def test_breaking_operations_are_refused(state, operation, reason):
    found = check(state, operation)
    assert found and reason in found[0].reason, found


@pytest.mark.parametrize("operation", [
    migrations.AddField("product", "subtitle", models.CharField(max_length=100, blank=True, default="", null=True)),
    migrations.AddField("product", "stock", models.IntegerField(db_default=0)),
    migrations.AlterField("product", "name", models.CharField(max_length=300)),
    migrations.AlterField("product", "price", models.DecimalField(max_digits=12, decimal_places=2)),
    migrations.AlterField("product", "sku", models.TextField()),
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
