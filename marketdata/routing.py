from django.urls import path

from .consumers import StreamConsumer

websocket_urlpatterns: list = [
    path("ws/stream", StreamConsumer.as_asgi()),
]
