"""The terminal channel: an interactive chat, or one member message per line of piped stdin."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TextIO

from bot.channels.plain import format_reply
from bot.engine import Engine, NotStored
from bot.messages import Inbound, Reply

logger = logging.getLogger(__name__)

CHANNEL = "console"
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # seconds between offers of a line the database could not store yet


class ConsoleChat:
    """One terminal conversation. Buttons are shown numbered; a number (or a button's words) typed
    afterwards presses it, also in the next run: the engine keeps the buttons with the conversation."""

    def __init__(self, engine: Engine, *, user_id: str = "console", language: str | None = None) -> None:
        self.engine = engine
        self.user_id = user_id
        self.language = language
        self.session_id = uuid.uuid4().hex[:12]
        self.counter = 0

    def inbound(self, line: str) -> Inbound:
        self.counter += 1
        return Inbound(
            channel=CHANNEL,
            user_id=self.user_id,
            delivery_id=f"{self.session_id}-{self.counter}",
            text=line,
            language_hint=self.language,
        )

    async def send(self, line: str, *, told: TextIO | None = None) -> list[Reply]:
        """The replies to ``line``. While the database cannot store it, the apology is written to ``told``
        (once) and the line is offered again, with the same delivery id, until it is stored."""
        inbound, delay, apologized = self.inbound(line), RETRY_FIRST, False
        while True:
            try:
                return await self.engine.handle(inbound)
            except NotStored as problem:
                if told is None:
                    return problem.replies
                if not apologized:
                    told.write(self.render(problem.replies) + "\n")
                    told.flush()
                    apologized = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def render(self, replies: list[Reply], *, styled: bool = False) -> str:
        blocks, number = [], 1
        for reply in replies:
            blocks.append(format_reply(reply, numbered_from=number, styled=styled))
            number += len(reply.choices)
        return "\n\n".join(blocks)


async def run(engine: Engine, *, user_id: str, language: str | None, stdin: TextIO, stdout: TextIO) -> None:
    """Chat until end of input. Interactive terminals get a prompt; piped input is answered line by line."""
    chat = ConsoleChat(engine, user_id=user_id, language=language)
    interactive = stdin.isatty()
    if interactive:
        stdout.write("registry-bot: type your question (Ctrl-D to quit)\n")
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        line = line.rstrip("\n")
        if not line.strip() and not interactive:
            continue
        replies = await chat.send(line, told=stdout)
        stdout.write(chat.render(replies, styled=stdout.isatty()) + "\n")
        if not interactive:
            stdout.write("\n")
        stdout.flush()
    if interactive:
        stdout.write("\n")
