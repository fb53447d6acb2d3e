from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=False)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=64, required=False)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=64, required=False)
    trade = forms.BooleanField(required=False, label="May trade (place and cancel orders, request funding)")
