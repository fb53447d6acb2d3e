from django.apps import AppConfig


class FixGatewayConfig(AppConfig):
    name = "fixgateway"
    verbose_name = "FIX 4.4 gateway"
