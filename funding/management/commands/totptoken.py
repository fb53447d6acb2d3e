from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = (
        "Print the current admin sign-in token of a user's TOTP device. For the demo operator and for "
        "whoever already has shell access (and so the database holding the keys); others use an authenticator app."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        device = TOTPDevice.objects.filter(user__username=username, confirmed=True).order_by("id").first()
        if device is None:
            raise CommandError(f"{username!r} has no TOTP device; create one with `manage.py totpdevice {username}`.")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        self.stdout.write(f"{totp.token():0{device.digits}d}")
