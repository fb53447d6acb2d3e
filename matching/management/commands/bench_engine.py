"""bench_engine: throughput of the pure matching engine (no database, no Redis).

Prints one JSON line with the figures from ``matching.bench.run_engine_bench``.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from matching.bench import run_engine_bench


class Command(BaseCommand):
    help = "Time the in-memory matching engine on a seeded mix of commands; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--commands", type=int, default=1_000_000, help="number of commands (default 1000000)")
        parser.add_argument("--seed", type=int, default=7, help="random seed of the command mix (default 7)")

    def handle(self, *args, **options):
        result = run_engine_bench(commands=options["commands"], seed=options["seed"])
        self.stdout.write(json.dumps(result))
