"""The context of one turn: what the member sent, who they are, their language, and helpers to answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import i18n
from bot.config import Profile
from bot.hours import SupportHours
from bot.mail import compose
from bot.messages import Inbound
from bot.registry.repo import enqueue_email
from bot.render import render

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.registry.repo import VerifiedMember


@dataclass
class Turn:
    """Everything a flow needs to handle one message; writes go through ``session``, one transaction."""

    inbound: Inbound
    profile: Profile
    now: datetime
    lang: str
    session: AsyncSession
    conversation_id: int
    member: VerifiedMember | None = None  # the member this chat account is verified as
    answer: str = ""  # the text, or the value of the button pressed for the current question
    lang_explicit: bool = False
    hours: SupportHours | None = None
    memory: dict[str, Any] = field(default_factory=dict)  # kept with the conversation, across flows
    # what happened, for whoever listens after the turn is committed (staff notifications)
    events: list[tuple[str, int]] = field(default_factory=list)
    language_changed: bool = field(default=False, init=False)
    #: what kind of turn this was, for metrics: flow, answer, clarify, unknown, intent, command, ...
    outcome: str = field(default="flow", init=False)

    @property
    def channel(self) -> str:
        return self.inbound.channel

    @property
    def user_id(self) -> str:
        return self.inbound.user_id

    def render(self, name: str, /, **context: Any) -> str:
        """Render a template in the member's language, with the registry profile at hand."""
        return render(
            name,
            self.lang,
            tz=self.profile.timezone,
            profile=self.profile,
            registry_name=self.profile.display_name(self.lang),
            **context,
        )

    def t(self, message: str) -> str:
        """Translate a string marked with ``N_`` into the member's language."""
        return i18n.gettext(self.lang, message)

    def email(self, template: str, recipient: str, **context: Any) -> None:
        """Queue an e-mail in the member's language; it is committed with this turn."""
        subject, body = compose(
            template,
            self.lang,
            tz=self.profile.timezone,
            profile=self.profile,
            registry_name=self.profile.display_name(self.lang),
            **context,
        )
        enqueue_email(self.session, recipient=recipient, subject=subject, body=body, now=self.now)

    def set_language(self, lang: str, *, explicit: bool) -> None:
        if lang != self.lang:
            self.language_changed = True
        self.lang = lang
        self.lang_explicit = self.lang_explicit or explicit
