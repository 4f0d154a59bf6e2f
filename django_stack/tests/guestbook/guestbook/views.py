"""The home page (two-pass: the entries, read from a replica, rendered once for everybody), a cached count, and
the form that signs the book (a write to the primary)."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_POST

from django_stack.twopass.views import TwoPassView
from guestbook.models import Entry


class HomeView(TwoPassView):
    template_name = "guestbook/home.html"

    def get_cache_key(self) -> str:
        return "guestbook:home"

    def get_dependencies(self) -> tuple[str, ...]:
        return ("guestbook:entries",)

    def get_shared_context(self) -> dict:
        # A read: the replica router sends it to a replica.
        return {"title": settings.GUESTBOOK_TITLE, "entries": list(Entry.objects.all()[:50])}


@require_POST
def sign(request):
    name, message = request.POST.get("name", "").strip(), request.POST.get("message", "").strip()
    if name and message:
        Entry.objects.create(name=name[:80], message=message[:500])
    return redirect("home")


@cache_page(30)
def count(request):
    """A whole response cached for 30 s: the entries' count, as a JSON API would serve it."""
    return JsonResponse({"entries": Entry.objects.count()})
