"""Refresh the gettext catalogs: extract every marked string, update the three catalogs, fill English.

Run from the project root after changing member-facing text: ``python scripts/catalogs.py``.
Then translate the new empty entries of ``locales/es`` and ``locales/zh_Hans``; the tests fail while any
entry is empty or fuzzy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"


def main() -> int:
    pot = LOCALES / "messages.pot"
    extract = [
        sys.executable,
        "-m",
        "babel.messages.frontend",
        "extract",
        "-F",
        "babel.cfg",
        "-o",
        str(pot),
        "--no-location",
        "--sort-output",
        "--project",
        "registry-bot",
        "--version",
        "0.1",
        ".",
    ]
    subprocess.run(extract, cwd=ROOT, check=True)
    for lang in ("en", "es", "zh_Hans"):
        po = LOCALES / lang / "LC_MESSAGES" / "messages.po"
        command = "update" if po.exists() else "init"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "babel.messages.frontend",
                command,
                "-i",
                str(pot),
                "-d",
                str(LOCALES),
                "-l",
                lang,
                *(["--no-fuzzy-matching"] if command == "update" else []),
            ],
            cwd=ROOT,
            check=True,
        )
    english = LOCALES / "en" / "LC_MESSAGES" / "messages.po"
    with english.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    for message in catalog:
        if isinstance(message.id, tuple):  # plural: English keeps its own singular and plural
            if not all(message.string):
                message.string = message.id
        elif message.id and not message.string:
            message.string = message.id
    with english.open("wb") as handle:
        write_po(handle, catalog, omit_header=False, sort_output=True, no_location=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
