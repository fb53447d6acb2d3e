import uuid

from django import forms

from ledger.models import Asset


def _assets():
    return [(code, code) for code in Asset.objects.order_by("code").values_list("code", flat=True)]


class DepositForm(forms.Form):
    asset = forms.ChoiceField(choices=_assets)
    amount = forms.CharField(max_length=60)
    # Generated when the form is shown: a double click or a resubmitted page creates one request.
    client_request_id = forms.CharField(max_length=64, widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex)


class WithdrawalForm(DepositForm):
    destination = forms.CharField(max_length=200)
