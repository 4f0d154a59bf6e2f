"""Render a first pass into cacheable segments, and fill the segments for one request (the second pass)."""

from __future__ import annotations

import re
import secrets

from django.template import RequestContext
from django.template.loader import get_template, render_to_string

NONCE_KEY = "twopass_nonce"
SLOT_TEMPLATE = "slots/{name}.html"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def marker(nonce: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"bad slot name {name!r}")
    return f"\x00{nonce}:{name}\x00"


def first_pass(template_name: str, context: dict) -> tuple:
    """Render the shared part; return ``(text, slot, text, slot, …, text)``: the texts as UTF-8 bytes, ready to be
    sent, the slots' names as strings. Plain data, no markup is ever parsed again."""
    nonce = secrets.token_hex(16)
    html = render_to_string(template_name, {**context, NONCE_KEY: nonce})
    pattern = re.compile(b"\x00" + nonce.encode() + rb":([a-z][a-z0-9_]*)\x00")
    parts = pattern.split(html.encode())
    parts[1::2] = [name.decode() for name in parts[1::2]]
    return tuple(parts)


def slot_names(segments: tuple) -> set[str]:
    return set(segments[1::2])


def render_slot(name: str, request) -> str:
    # get_template goes through Django's cached loader: compiled on first use, reused afterwards.
    return get_template(SLOT_TEMPLATE.format(name=name)).render({}, request)


def second_pass(segments: tuple, request) -> bytes:
    """Fill every slot for this request; return the page as bytes. Each distinct slot is rendered once, from its
    compiled template, all with one RequestContext (the context processors run once per request, not once per
    slot). The shared texts are never decoded or copied but once, into the page."""
    names = segments[1::2]
    templates = {name: get_template(SLOT_TEMPLATE.format(name=name)).template for name in set(names)}
    filled = {}
    if templates:
        context = RequestContext(request)
        with context.bind_template(next(iter(templates.values()))):
            for name, template in templates.items():
                filled[name] = template.render(context).encode()
    parts = list(segments)
    parts[1::2] = [filled[name] for name in names]
    return b"".join(parts)
