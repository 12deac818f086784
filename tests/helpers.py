"""A scripted member for engine tests: says things, presses buttons, reads replies."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select

from bot.app import App
from bot.engine import Engine
from bot.messages import Inbound, Reply
from bot.registry.session import make_engine

_deliveries = itertools.count(1)
T = TypeVar("T")


class Chatter:
    """One chat user talking to the engine the way a channel would deliver their messages."""

    def __init__(
        self, engine: Engine, user_id: str = "u1", *, channel: str = "test", hint: str | None = None
    ):
        self.engine = engine
        self.user_id = user_id
        self.channel = channel
        self.hint = hint
        self.last: list[Reply] = []

    def inbound(
        self, text: str = "", *, payload: str | None = None, delivery_id: str | None = None
    ) -> Inbound:
        return Inbound(
            channel=self.channel,
            user_id=self.user_id,
            delivery_id=delivery_id or f"d{next(_deliveries)}",
            text=text,
            payload=payload,
            language_hint=self.hint,
        )

    async def say(self, text: str = "", *, payload: str | None = None, delivery_id: str | None = None) -> str:
        """Send a message; returns all reply texts joined, keeps the replies in ``last``."""
        self.last = await self.engine.handle(self.inbound(text, payload=payload, delivery_id=delivery_id))
        # and staff have heard of it (the engine tells them in the background)
        assert await self.engine.settle(timeout=10), "the listeners did not finish within 10 s"
        return "\n".join(reply.text for reply in self.last)

    async def press(self, label_part: str) -> str:
        """Press the button of the last replies whose label contains ``label_part``."""
        for reply in self.last:
            for choice in reply.choices:
                if label_part.lower() in choice.label.lower():
                    return await self.say(payload=choice.payload)
        labels = [choice.label for reply in self.last for choice in reply.choices]
        raise AssertionError(f"no button {label_part!r} among {labels}")

    async def press_flow(self, flow: str) -> str:
        """Start a flow the way its "start now" button would."""
        return await self.say(payload=f"flow:{flow}")

    def buttons(self) -> list[str]:
        return [choice.label for reply in self.last for choice in reply.choices]


async def latest_mail(sessionmaker: Any, recipient: str) -> Any:
    """The newest outbox message to ``recipient`` (None when there is none)."""
    from sqlalchemy import select

    from bot.registry.models import OutboxMessage

    async with sessionmaker() as session:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.recipient == recipient)
            .order_by(OutboxMessage.id.desc())
        )
        return (await session.execute(query)).scalars().first()


async def verify(
    chatter: Chatter, sessionmaker: Any, registry_id: str, email: str, *, start: str = "verify my account"
) -> str:
    """Link the chat account: Registry ID, e-mail, then the code read from the outbox."""
    if start:
        await chatter.say(start)
    await chatter.say(registry_id)
    await chatter.say(email)
    return await chatter.say(await emailed_code(sessionmaker, email))


async def emailed_code(sessionmaker: Any, email: str) -> str:
    """The verification code in the newest e-mail to ``email``."""
    mail = await latest_mail(sessionmaker, email)
    assert mail is not None, "no code was e-mailed"
    code = re.search(r"\b(\d{6})\b", mail.body)
    assert code is not None
    return code.group(1)


async def count_rows(app: App, model: type, *where: Any, **equal: Any) -> int:
    """Rows of ``model`` matching the ``where`` clauses and the ``column=value`` pairs."""
    query = select(func.count()).select_from(model).where(*where)
    for column, value in equal.items():
        query = query.where(getattr(model, column) == value)
    async with app.sessionmaker() as session:
        return int((await session.execute(query)).scalar_one())


async def rows(app: App, model: type[T], *where: Any) -> list[T]:
    """The rows of ``model`` matching the ``where`` clauses."""
    async with app.sessionmaker() as session:
        return list((await session.execute(select(model).where(*where))).unique().scalars().all())


async def one(app: App, model: type[T], *where: Any) -> T:
    """The one row of ``model`` matching the ``where`` clauses (fails unless there is exactly one)."""
    (row,) = await rows(app, model, *where)
    return row


@contextlib.asynccontextmanager
async def database_away(app: App, tmp_path: Path) -> AsyncIterator[None]:
    """The app's database cannot be reached inside the block (a wrong address), and is back after."""
    url = str(app.database.url)
    unreachable = (
        f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'registry.db'}"
        if url.startswith("sqlite")
        else "postgresql+asyncpg://postgres@127.0.0.1:9/test"  # nothing listens on the discard port
    )
    working, broken = app.engine.database, make_engine(unreachable)
    app.engine.database = broken
    app.sessionmaker.configure(bind=broken)
    try:
        yield
    finally:
        app.engine.database = working
        app.sessionmaker.configure(bind=working)
        await broken.dispose()


def run_python(
    argv: list[str], cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """This Python with ``argv`` in ``cwd``, as a user's shell would start it: none of this process's
    ``REGISTRY_BOT_*`` settings, only ``env`` on top."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_BOT_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
        check=False,
    )
