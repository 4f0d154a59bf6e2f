from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render

from cart import cart
from catalog.models import Product
from dbfailover.databases import PRIMARY_ALIAS
from orders.models import Order, OrderLine


@login_required
def checkout(request):
    lines, total = cart.lines(request.session)
    if request.method == "POST":
        if not lines:
            return redirect("cart:detail")
        items = cart.get(request.session)
        # One transaction on the primary: the order and all its lines, or nothing. Prices are read inside it
        # (from the primary, as reads in a transaction are), not from the cache.
        with transaction.atomic(using=PRIMARY_ALIAS):
            products = Product.objects.using(PRIMARY_ALIAS).in_bulk(list(items))
            order_total = sum((products[pk].price * qty for pk, qty in items.items() if pk in products), Decimal(0))
            order = Order.objects.create(user=request.user, total=order_total)
            OrderLine.objects.bulk_create(
                OrderLine(order=order, product=products[pk], name=products[pk].name,
                          unit_price=products[pk].price, quantity=qty)
                for pk, qty in items.items() if pk in products
            )
        cart.clear(request.session)
        return redirect(order)
    return render(request, "orders/checkout.html", {"lines": lines, "total": total, "title": "Checkout"})


@login_required
def detail(request, pk):
    order = get_object_or_404(Order.objects.prefetch_related("lines"), pk=pk, user=request.user)
    return render(request, "orders/detail.html", {"order": order, "title": f"Order {order.pk}"})
