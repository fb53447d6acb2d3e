import pytest

from fixgateway.models import FixMessage

from .factories import FixMessageFactory

pytestmark = pytest.mark.django_db


def test_the_journal_reads_as_on_the_wire_and_cannot_be_changed(admin_client):
    message = FixMessageFactory()
    page = admin_client.get("/admin/fixgateway/fixmessage/").content.decode()
    assert "35=D|11=A1|" in page
    assert admin_client.get(f"/admin/fixgateway/fixmessage/{message.pk}/change/").status_code == 200
    assert admin_client.get("/admin/fixgateway/fixmessage/add/").status_code == 403
    assert admin_client.post(f"/admin/fixgateway/fixmessage/{message.pk}/delete/", {"post": "yes"}).status_code == 403
    with pytest.raises(PermissionError):
        message.delete()
    assert FixMessage.objects.count() == 1


def test_sessions_show_their_sequence_numbers(admin_client):
    session = FixMessageFactory().session
    page = admin_client.get("/admin/fixgateway/fixsession/").content.decode()
    assert session.sender_comp_id in page
    assert admin_client.post(f"/admin/fixgateway/fixsession/{session.pk}/delete/", {"post": "yes"}).status_code == 403
