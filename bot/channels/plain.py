"""Replies as plain text, for channels without rich formatting (the terminal, text messages): the engine's
light Markdown as words, choices as numbered lines, links as addresses."""

from __future__ import annotations

import re

from bot.messages import Reply

_BOLD = re.compile(r"\*\*(?=\S)([^\n]*?\S)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
BOLD_ON, BOLD_OFF = "\033[1m", "\033[0m"


def plain_text(text: str, *, styled: bool = False) -> str:
    """The engine's light Markdown as terminal text: ``**bold**`` in bold on a terminal that shows it (else
    just the words), ``[label](url)`` as "label (url)"."""
    text = _LINK.sub(r"\1 (\2)", text)
    return _BOLD.sub(rf"{BOLD_ON}\1{BOLD_OFF}" if styled else r"\1", text)


def format_reply(
    reply: Reply,
    *,
    numbered_from: int = 1,
    styled: bool = False,
    choice_line: str = "  [{number}] {label}",
    link_line: str = "  {label}: {url}",
) -> str:
    """A reply as plain text: the message, numbered choices, then links (the line formats differ between
    the terminal and a text message)."""
    lines = [plain_text(reply.text, styled=styled)]
    for number, choice in enumerate(reply.choices, start=numbered_from):
        lines.append(choice_line.format(number=number, label=choice.label))
    for link in reply.links:
        lines.append(link_line.format(label=link.label, url=link.url))
    return "\n".join(lines)
