"""Dependencies point one way: only channels know platforms; intents and flows never touch SQLAlchemy."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"
PLATFORMS = ("telegram", "slack_bolt", "slack_sdk", "starlette", "uvicorn")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_only_channels_import_platform_libraries() -> None:
    offenders = [
        (str(path.relative_to(BOT)), name)
        for path in BOT.rglob("*.py")
        if "channels" not in path.parts
        for name in imports(path)
        if name.split(".")[0] in PLATFORMS
    ]
    assert offenders == []


def test_intents_and_flows_do_not_import_sqlalchemy_or_channels() -> None:
    offenders = [
        (str(path.relative_to(BOT)), name)
        for folder in ("intents", "flows")
        for path in (BOT / folder).rglob("*.py")
        for name in imports(path)
        if name.split(".")[0] == "sqlalchemy" or name.startswith("bot.channels")
    ]
    assert offenders == []


def test_the_core_does_not_import_channels() -> None:
    offenders = [
        str(path.relative_to(BOT))
        for path in BOT.rglob("*.py")
        if "channels" not in path.parts
        and path.name not in ("cli.py", "app.py")
        and any(name.startswith("bot.channels") for name in imports(path))
    ]
    assert offenders == []
