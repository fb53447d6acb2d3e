from decimal import Decimal

import factory
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.tests.factories import UserFactory
from funding.models import FundingRequest


class TOTPDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "authenticator"
    confirmed = True


def otp_login(client, user) -> TOTPDevice:
    """Log ``client`` in as ``user`` with a session verified by a TOTP device, as the admin requires."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDeviceFactory(user=user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


class FundingRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FundingRequest

    user = factory.SubFactory(UserFactory)
    kind = FundingRequest.Kind.DEPOSIT
    amount = Decimal("10")


def operators_group():
    """The "Operators" group as its data migration makes it (a transactional test's flush removes it)."""
    import importlib

    from django.contrib.auth.models import Group, Permission

    migration = importlib.import_module("funding.migrations.0002_operators_group")
    group, _ = Group.objects.get_or_create(name="Operators")
    for app_label, codename in migration.OPERATOR_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


def operator_create(**fields):
    """A staff user who is not a superuser, in the Operators group."""
    staff = UserFactory(is_staff=True, **fields)
    staff.groups.add(operators_group())
    return staff
