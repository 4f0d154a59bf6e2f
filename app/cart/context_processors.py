from django.utils.functional import SimpleLazyObject

from cart import cart


def cart_count(request):
    """``cart_count`` for templates; lazy, so pages that do not show it do not touch the session."""
    return {"cart_count": SimpleLazyObject(lambda: cart.count(request.session))}
