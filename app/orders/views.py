from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404, redirect, render

from cart import cart
from catalog.models import Product
from django_stack.dbfailover.databases import PRIMARY_ALIAS
from orders.models import Checkout, Order, OrderLine


@login_required
def checkout(request):
    lines, total = cart.lines(request.session)
    if request.method == "POST":
        if not lines:
            return redirect("cart:detail")
        items = cart.get(request.session)
        key = cart.token(request.session)
        try:
            order = _place_order(request.user, items, key)
        except IntegrityError:
            # This cart was ordered already (another request at the same moment, or a retry after the order
            # was saved and the session was not): that order is the answer.
            done = (Checkout.objects.using(PRIMARY_ALIAS).select_related("order")
                    .filter(key=key, order__user=request.user).first())
            if done is None:
                raise
            order = done.order
        cart.clear(request.session)
        return redirect(order)
    return render(request, "orders/checkout.html", {"lines": lines, "total": total, "title": "Checkout"})


def _place_order(user, items, key) -> Order:
    # One transaction on the primary: the order, all its lines and its checkout key, or nothing. Prices are read
    # inside it (from the primary, as reads in a transaction are), not from the cache. A second transaction with
    # the same key waits on the key's unique index, then fails: one order per cart.
    with transaction.atomic(using=PRIMARY_ALIAS):
        products = Product.objects.using(PRIMARY_ALIAS).in_bulk(list(items))
        order_total = sum((products[pk].price * qty for pk, qty in items.items() if pk in products), Decimal(0))
        order = Order.objects.create(user=user, total=order_total)
        OrderLine.objects.bulk_create(
            OrderLine(order=order, product=products[pk], name=products[pk].name,
                      unit_price=products[pk].price, quantity=qty)
            for pk, qty in items.items() if pk in products
        )
        Checkout.objects.using(PRIMARY_ALIAS).create(key=key, order=order)
    return order


@login_required
def detail(request, pk):
    order = get_object_or_404(Order.objects.prefetch_related("lines"), pk=pk, user=request.user)
    return render(request, "orders/detail.html", {"order": order, "title": f"Order {order.pk}"})
