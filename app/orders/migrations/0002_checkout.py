import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Checkout",
            fields=[
                ("key", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("order", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                               related_name="checkout", to="orders.order")),
            ],
        ),
    ]
