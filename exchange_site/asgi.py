import os

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

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from marketdata.routing import websocket_urlpatterns  # noqa: E402
from marketdata.ws_auth import TokenOrSessionAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The Origin check is inside: a token client without an Origin (not a browser) is let in.
        "websocket": TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
