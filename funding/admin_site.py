"""The project's admin site: two-factor sign-in (django-otp TOTP) and the operator overview page.

``exchange_site/urls.py`` turns the default ``admin.site`` into this class, so every ModelAdmin
registered on it keeps working. A staff user is admitted only with a session verified by one of
their OTP devices (``manage.py totpdevice USERNAME`` creates one); the login page asks for the token.
"""

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from .selectors import operator_overview


class ExchangeAdminLoginForm(OTPAdminAuthenticationForm):
    """An operator with one authenticator types its token without picking the device first."""

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                return devices[0]
        return device


class ExchangeAdminSite(OTPAdminSite):
    login_form = ExchangeAdminLoginForm
    site_header = "Exchange operations"
    site_title = "Exchange admin"
    index_template = "admin/exchange_index.html"

    def get_urls(self):
        return [path("overview/", self.admin_view(self.overview_view), name="overview"), *super().get_urls()]

    def overview_view(self, request):
        if not request.user.has_perm("funding.view_fundingrequest"):
            raise PermissionDenied
        context = {**self.each_context(request), "title": "Overview", **operator_overview()}
        return TemplateResponse(request, "admin/overview.html", context)
