from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from django_stack.twopass import versions


class Entry(models.Model):
    name = models.CharField(max_length=80)
    message = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]


@receiver([post_save, post_delete], sender=Entry, dispatch_uid="guestbook.entry_changed")
def entry_changed(sender, **kwargs):
    # Once the write is committed: the next page build reads it (from the primary, or a replica that has it).
    transaction.on_commit(lambda: versions.bump("guestbook:entries"))
