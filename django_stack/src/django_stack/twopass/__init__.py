"""Two-pass cached pages.

The first pass renders everything that is the same for every user and caches it; the second pass fills in the
few user-specific parts (greeting, cart count, CSRF token) for each request.

How the first pass's output stays data, never code: instead of emitting template syntax for a second parse (the
talk's ``{% templatetag openblock %}`` technique, where a product named ``{% debug %}`` or ``{{ request }}``
becomes live template code in the second pass unless every field is escaped twice), the first pass emits a
marker for each slot, ``{% slot "name" %}``, made of a random nonce drawn for that render. The rendered page is
split at those markers into a list ``[text, slot, text, slot, …]`` and that list is what is cached. The second
pass never parses anything: it renders each named slot's own small template (compiled once by Django's cached
template loader and reused) with the request, and joins. Nothing that came from the database or a user can
become a slot, because no one but that render knows its nonce. It is the talk's pre-parsed template with the
parser taken out of the path.
"""
