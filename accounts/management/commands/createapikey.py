from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import user_get
from accounts.services import api_key_create
from exchange_site.errors import RuleViolation


class Command(BaseCommand):
    help = "Create an API key pair for signed requests; prints '<key_id> <secret>' on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--scopes", default="read,trade", help="read, or read,trade (the default).")
        parser.add_argument("--name", default="createapikey")

    def handle(self, *args, username, scopes, name, **options):
        try:
            api_key, secret = api_key_create(user=user_get(username=username), name=name, scopes=scopes)
        except RuleViolation as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"Created API key {api_key.key_id} ({api_key.scopes}) for {username}; the secret is shown once."
        )
        self.stdout.write(f"{api_key.key_id} {secret}")
