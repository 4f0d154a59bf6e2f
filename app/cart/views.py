from django import forms
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from cart import cart
from catalog import datacache


class CartForm(forms.Form):
    product = forms.IntegerField(min_value=1)
    quantity = forms.IntegerField(min_value=1, max_value=cart.MAX_QUANTITY, required=False)
    next = forms.CharField(required=False)


def _back(request, form):
    target = form.cleaned_data.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect("cart:detail")


def detail(request):
    lines, total = cart.lines(request.session)
    return render(request, "cart/detail.html", {"lines": lines, "total": total, "title": "Your cart"})


@require_POST
def add(request):
    form = CartForm(request.POST)
    if not form.is_valid() or datacache.product(form.cleaned_data["product"]) is None:
        return HttpResponseBadRequest("unknown product")
    cart.add(request.session, form.cleaned_data["product"], form.cleaned_data.get("quantity") or 1)
    return _back(request, form)


@require_POST
def remove(request):
    form = CartForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("unknown product")
    cart.remove(request.session, form.cleaned_data["product"])
    return _back(request, form)
