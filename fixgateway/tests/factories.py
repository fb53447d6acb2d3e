import factory

from accounts.tests.factories import UserFactory
from fixgateway.models import FixMessage, FixSession


class FixSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FixSession

    user = factory.SubFactory(UserFactory)
    sender_comp_id = factory.LazyAttribute(lambda session: session.user.username)


class FixMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FixMessage

    session = factory.SubFactory(FixSessionFactory)
    sender_comp_id = factory.LazyAttribute(lambda message: message.session.sender_comp_id)
    direction = FixMessage.Direction.IN
    seq_num = 1
    msg_type = "D"
    raw = "8=FIX.4.4\x019=5\x0135=D\x0111=A1\x0110=000\x01"
