import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange_site.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

if settings.DEBUG:
    # daphne serves no static files itself; locally (DEBUG) Django does, as runserver would.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)
else:
    # In production the application serves what `collectstatic` gathered into STATIC_ROOT, read
    # once at start-up, with caching headers; any other path goes on to Django.
    from servestatic import ServeStaticASGI

    django_asgi_app = ServeStaticASGI(django_asgi_app, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)

import re  # noqa: E402

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from exchange_site.fast_lane import FastLane, Route  # noqa: E402
from marketdata import fast_lane as depth_lane  # noqa: E402
from marketdata.routing import websocket_urlpatterns  # noqa: E402
from marketdata.ws_auth import TokenOrSessionAuthMiddleware  # noqa: E402
from orders import fast_lane as order_lane  # noqa: E402

# What bots send most, answered without Django's request cycle when plain (exchange_site/fast_lane.py).
FAST_ROUTES = [
    Route("POST", re.compile(r"/api/v1/orders"), order_lane.place, b"GET, POST, DELETE, HEAD, OPTIONS"),
    Route("POST", re.compile(r"/api/v1/orders/batch"), order_lane.place_batch, b"POST, OPTIONS"),
    Route("GET", re.compile(r"/api/v1/markets/(?P<symbol>[^/]+)/depth"), depth_lane.depth, b"GET, HEAD, OPTIONS"),
]

# An order-door thread holds its users' ledger rows locked for the eight round trips of a placement
# and, after each, waits for the GIL the event loop and the other threads hold. At the default 5 ms
# switch interval that wait was most of the lock time the shard's commits queued behind; 1 ms, as
# the shard process uses (matching/worker.py).
sys.setswitchinterval(0.001)

application = ProtocolTypeRouter(
    {
        "http": FastLane(django_asgi_app, FAST_ROUTES),
        # The Origin check is inside: a token client without an Origin (not a browser) is let in.
        "websocket": TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
