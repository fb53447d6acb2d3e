from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        # Connects the signals that keep the per-process API token memo fresh.
        from . import services  # noqa: F401
