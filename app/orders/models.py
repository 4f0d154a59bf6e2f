from django.conf import settings
from django.db import models
from django.urls import reverse


class Order(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    created = models.DateTimeField(auto_now_add=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"order {self.pk}"

    def get_absolute_url(self):
        return reverse("orders:detail", args=[self.pk])


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="+")
    # What the customer saw and paid, kept even if the product changes later.
    name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()


class Checkout(models.Model):
    """One row per cart ordered: the cart's token (``cart.cart.token``) is unique, so the same cart makes one
    order however many times, or however concurrently, its checkout is posted."""

    key = models.CharField(max_length=64, primary_key=True)
    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="checkout")
    created = models.DateTimeField(auto_now_add=True)
