from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = (
        "Create a TOTP device for a staff user (the admin asks for its token at sign-in). Prints the "
        "otpauth:// URL for an authenticator app and, last, the hex key."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator")
        parser.add_argument("--key", help="hex key to use (default: a random one)")

    def handle(self, *args, username, name, key, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not user.is_staff:
            self.stderr.write(f"Note: {username} is not staff; the admin will not admit them anyway.")
        fields = {"user": user, "name": name, "confirmed": True}
        if key:
            fields["key"] = key
        device = TOTPDevice.objects.create(**fields)
        self.stdout.write(device.config_url)
        self.stdout.write(device.key)
