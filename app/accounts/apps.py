from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from accounts.backends import forget_user

        model = get_user_model()
        post_save.connect(forget_user, sender=model, dispatch_uid="accounts.forget_user_saved")
        post_delete.connect(forget_user, sender=model, dispatch_uid="accounts.forget_user_deleted")
