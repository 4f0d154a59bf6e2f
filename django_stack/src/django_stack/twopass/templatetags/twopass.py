"""``{% slot "name" %}``: a user-specific part of a page, filled for each request.

In a first pass (two-pass page) it leaves a marker that the second pass fills. On a page rendered in one go
with a request (login, cart), it renders the slot at once. Either way the same ``slots/<name>.html`` is used.
"""

from django import template
from django.utils.safestring import mark_safe

from django_stack.twopass.render import NONCE_KEY, marker, render_slot

register = template.Library()


@register.simple_tag(takes_context=True)
def slot(context, name):
    nonce = context.get(NONCE_KEY)
    if nonce is not None:
        return mark_safe(marker(nonce, name))
    request = getattr(context, "request", None)
    if request is None:
        raise template.TemplateSyntaxError(f"{{% slot {name!r} %}} needs a first pass or a request")
    return mark_safe(render_slot(name, request))
