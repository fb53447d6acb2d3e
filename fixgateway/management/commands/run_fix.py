"""``manage.py run_fix``: the FIX 4.4 acceptor (see fixgateway/server.py)."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from fixgateway.server import Acceptor


class Command(BaseCommand):
    help = "Serve FIX 4.4 order entry sessions on FIX_PORT until SIGTERM or SIGINT."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.FIX_HOST)
        parser.add_argument("--port", type=int, default=settings.FIX_PORT)

    def handle(self, *args, host, port, **options):
        asyncio.run(self._serve(host, port))

    async def _serve(self, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # Sessions get a Logout before the process ends, so clients know it was not a network fault.
        await Acceptor(host=host, port=port).serve(stop)
