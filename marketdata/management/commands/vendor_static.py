"""Copy the browser libraries the pages load from node_modules (``npm install``) into static/vendor/.

static/vendor/ is git-ignored: nothing from npm is committed. Run by ``make`` after ``npm install``.
"""

import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# node_modules path -> static/vendor file name
FILES = {
    "lightweight-charts/dist/lightweight-charts.standalone.production.js": "lightweight-charts.standalone.production.js",
}


def vendor_static(*, base_dir: Path | None = None) -> list[Path]:
    """Copy each file whose copy is missing or older; returns the copies made. Raises FileNotFoundError."""
    base_dir = Path(base_dir or settings.BASE_DIR)
    target_dir = base_dir / "static" / "vendor"
    target_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for source_name, target_name in FILES.items():
        source = base_dir / "node_modules" / source_name
        target = target_dir / target_name
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing: run `npm install` first.")
        if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
            shutil.copy2(source, target)
            copied.append(target)
    return copied


class Command(BaseCommand):
    help = "Copy front-end libraries from node_modules into static/vendor/."

    def handle(self, *args, **options):
        try:
            copied = vendor_static()
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"static/vendor: {len(copied)} file(s) updated, {len(FILES) - len(copied)} up to date.")
