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
from bot.registry.session import session_in
from bot.render import render_for

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from bot.registry.plain import Bookkeeping, TurnTransaction
    from bot.registry.repo import VerifiedMember


@dataclass
class Turn:
    """Everything a flow needs to handle one message; all its reads and writes are one transaction."""

    inbound: Inbound
    profile: Profile
    now: datetime
    lang: str
    #: the turn's one transaction: its own statements (``books``), and a connection for Core and the ORM
    transaction: TurnTransaction
    conversation_id: int
    member: VerifiedMember | None = None  # the member this chat account is verified as
    answer: str = ""  # the text, or the value of the button pressed for the current question
    lang_explicit: bool = False
    hours: SupportHours | None = None
    memory: dict[str, Any] = field(default_factory=dict)  # kept with the conversation, across flows
    #: the member's question that the turn before could not answer (a person taking over starts from it)
    unanswered: str | None = None
    # what happened, for whoever listens after the turn is committed (staff notifications)
    events: list[tuple[str, int]] = field(default_factory=list)
    language_changed: bool = field(default=False, init=False)
    #: what kind of turn this was, for metrics: flow, answer, clarify, unknown, intent, command, ...
    outcome: str = field(default="flow", init=False)
    #: how many of the message's files were kept (a channel tells the member which were not)
    files_kept: int = field(default=0, init=False)
    _session: AsyncSession | None = field(default=None, init=False, repr=False)

    @property
    def books(self) -> Bookkeeping:
        """The turn's own statements (claim, conversation, answers, gaps, transcript)."""
        return self.transaction.books

    @property
    def connection(self) -> AsyncConnection:
        """The turn's connection for Core statements, in its transaction (made when first asked for)."""
        return self.transaction.connection

    @property
    def session(self) -> AsyncSession:
        """An ORM session in the turn's transaction, opened when first asked for (most turns need none)."""
        if self._session is None:
            self._session = session_in(self.connection)
        return self._session

    async def flush(self) -> None:
        """Send what was written through ``session`` to the turn's transaction (before it commits)."""
        if self._session is not None:
            try:
                await self._session.flush()
            finally:
                await self.close()

    async def close(self) -> None:
        """Close the session if one was opened (the turn's connection, not the session, ends the work)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def channel(self) -> str:
        return self.inbound.channel

    @property
    def user_id(self) -> str:
        return self.inbound.user_id

    def render(self, name: str, /, **context: Any) -> str:
        """Render a template in the member's language, with the registry profile at hand."""
        return render_for(self.profile, name, self.lang, **context)

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
