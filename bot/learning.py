"""What the help desk teaches the assistant: the content-gap digest and staff's decisions on it.

Each week (and on ``/registry gaps``) the questions the assistant declined, asked back about, or whose answer
got a 👎 are grouped by what they ask, in any of the three languages (``bot.understanding.gaps``). For each
group staff say which topic it belongs to (its questions become labelled examples that ``registry-bot kb
train`` learns from), that it needs a new article (listed until an article with that topic id exists), or to
ignore it; any of these can be undone. The digest closes with each article's helpfulness per language.
Whatever staff tool calls these, a decision is one transaction and says whether it took effect.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Profile, Settings
from bot.helpdesk import Outcome
from bot.knowledge import KnowledgeBase
from bot.registry import learning
from bot.registry.learning import Gap, Helpfulness
from bot.registry.models import GapGroup
from bot.understanding.gaps import ArticleSpace, Question, group
from bot.understanding.message import Message
from bot.understanding.model import OUT_OF_SCOPE, TopicModel

MAX_GAPS = 1000  # the newest open gaps a digest groups
MAX_GROUPS = 12  # groups a digest shows (a Slack message holds 50 blocks)
MAX_EXAMPLES = 3
NEAR_TOPICS = 3
TOPIC_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


@dataclass(frozen=True, slots=True)
class Near:
    """An article a group came close to: its topic, title, and mean probability over the group."""

    topic: str
    title: str
    probability: float


@dataclass(frozen=True, slots=True)
class DigestGroup:
    """One group of a digest, and staff's decision on it so far."""

    id: int
    size: int
    languages: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]  # (language, text), personal data masked
    kinds: tuple[tuple[str, int], ...]  # (unknown | clarify | unhelpful, count)
    near: tuple[Near, ...]
    unhelpful_on: tuple[str, ...]  # the titles of the answers that got a 👎
    status: str  # open, labelled, new_article, ignored
    topic: str | None
    topic_title: str | None
    decided_by: str | None


@dataclass(frozen=True, slots=True)
class Digest:
    """A content-gap digest of one registry (``created_at`` names it: its groups share that time)."""

    registry: str
    created_at: datetime
    days: int
    questions: int  # open gaps in the period, grouped or not
    groups: tuple[DigestGroup, ...]
    topics: tuple[tuple[str, str], ...]  # (topic, English title): what a group may belong to
    helpfulness: tuple[tuple[str, Helpfulness], ...]  # (English title, figures)
    waiting: tuple[WaitingArticle, ...]


@dataclass(frozen=True, slots=True)
class WaitingArticle:
    """A group staff said needs a new article, until an article with ``topic`` exists."""

    group_id: int
    topic: str
    size: int
    example: str
    decided_by: str
    decided_at: datetime


class ContentGaps:
    """The content-gap digest and staff's decisions on it, for one registry profile."""

    def __init__(
        self,
        *,
        settings: Settings,
        profile: Profile,
        sessionmaker: async_sessionmaker[AsyncSession],
        knowledge: KnowledgeBase,
        models: Mapping[str, TopicModel],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.sessionmaker = sessionmaker
        self.knowledge = knowledge
        self.models = models
        self.clock = clock
        self._space: ArticleSpace | None = None

    @property
    def registry(self) -> str:
        return self.profile.key

    def _title(self, topic: str) -> str:
        article = self.knowledge.article(self.registry, topic, "en")
        return article.title if article is not None else topic

    def topics(self) -> tuple[tuple[str, str], ...]:
        """The topics a group may belong to (this registry's only), with their English titles."""
        return tuple((topic, self._title(topic)) for topic in self.knowledge.topics(self.registry))

    # -- the digest ---------------------------------------------------------------------------------------

    async def digest(self, *, days: int | None = None) -> Digest:
        """Group the open content gaps of the last ``days`` days into a new digest (stored, so staff's
        clicks find its groups) and return it."""
        days = days or self.settings.gaps_digest_days
        now = self.clock()
        async with self.sessionmaker() as session:
            gaps = await learning.open_gaps(
                session, registry=self.registry, since=now - timedelta(days=days), limit=MAX_GAPS
            )
        gaps.reverse()  # oldest first: a group's first example is the first time it was asked
        questions = [Question(gap.text, gap.language) for gap in gaps]
        # grouping takes a moment (a second for a thousand questions): members are answered meanwhile
        grouped = await asyncio.to_thread(lambda: group(questions, self._article_space()))
        async with self.sessionmaker() as session, session.begin():
            for indexes in grouped[:MAX_GROUPS]:
                await learning.new_group(
                    session, registry=self.registry, gap_ids=[gaps[i].id for i in indexes], now=now
                )
            return await self._digest(session, now, days, questions=len(gaps))

    async def view(self, created_at: datetime) -> Digest:
        """The digest made at ``created_at`` as it stands now (after staff's decisions)."""
        async with self.sessionmaker() as session:
            return await self._digest(session, created_at, self.settings.gaps_digest_days, questions=None)

    async def _digest(
        self, session: AsyncSession, created_at: datetime, days: int, *, questions: int | None
    ) -> Digest:
        rows = (
            await session.execute(
                select(GapGroup)
                .where(GapGroup.registry_key == self.registry, GapGroup.created_at == created_at)
                .order_by(GapGroup.id)
            )
        ).scalars()
        groups = [self._group(row, await learning.group_gaps(session, row.id)) for row in rows]
        groups.sort(key=lambda g: (-g.size, g.id))
        since = created_at - timedelta(days=days)
        helpfulness = await learning.helpfulness(session, registry=self.registry, since=since)
        return Digest(
            registry=self.registry,
            created_at=created_at,
            days=days,
            questions=questions if questions is not None else sum(g.size for g in groups),
            groups=tuple(groups),
            topics=self.topics(),
            helpfulness=tuple((self._title(h.topic), h) for h in helpfulness),
            waiting=tuple(await self._waiting(session)),
        )

    def _article_space(self) -> ArticleSpace:
        """The registry's topic space, made again when a retrained model has been loaded since."""
        model = self.models.get(self.registry)
        if self._space is None or self._space.model is not model:
            self._space = ArticleSpace(self.knowledge, self.registry, model)
        return self._space

    def _group(self, row: GapGroup, gaps: list[Gap]) -> DigestGroup:
        languages = tuple(dict.fromkeys(gap.language for gap in gaps))
        examples: list[tuple[str, str]] = []
        for lang in languages:  # one example per language first, then the others
            examples.extend((g.language, g.text) for g in gaps if g.language == lang)
        distinct = list(dict.fromkeys(examples))
        firsts = [next(e for e in distinct if e[0] == lang) for lang in languages]
        shown = list(dict.fromkeys([*firsts, *distinct]))[:MAX_EXAMPLES]
        kinds = Counter(gap.kind for gap in gaps)
        return DigestGroup(
            id=row.id,
            size=len(gaps),
            languages=languages,
            examples=tuple(shown),
            kinds=tuple(sorted(kinds.items())),
            near=self._near(gaps),
            unhelpful_on=tuple(dict.fromkeys(self._title(g.topic) for g in gaps if g.topic)),
            status=row.status,
            topic=row.topic,
            topic_title=self._title(row.topic) if row.topic and row.status == "labelled" else None,
            decided_by=row.decided_by,
        )

    def _near(self, gaps: list[Gap]) -> tuple[Near, ...]:
        """The articles the group's questions came closest to, by the topic model's mean probability."""
        model = self.models.get(self.registry)
        if model is None or not gaps:
            return ()
        mean = np.mean([model.probabilities(Message.of(g.text, g.language)) for g in gaps], axis=0)
        order = [i for i in np.argsort(-mean).tolist() if model.classes[i] != OUT_OF_SCOPE][:NEAR_TOPICS]
        return tuple(Near(model.classes[i], self._title(model.classes[i]), float(mean[i])) for i in order)

    async def _waiting(self, session: AsyncSession) -> list[WaitingArticle]:
        existing = set(self.knowledge.topics(self.registry))
        waiting = []
        for row in await learning.groups_needing_articles(session, registry=self.registry):
            if row.topic is None or row.topic in existing or row.decided_at is None:
                continue
            gaps = await learning.group_gaps(session, row.id)
            example = gaps[0].text if gaps else ""
            waiting.append(
                WaitingArticle(row.id, row.topic, len(gaps), example, row.decided_by or "", row.decided_at)
            )
        return waiting

    async def waiting_for_articles(self) -> list[WaitingArticle]:
        """Groups that need a new article, until an article with their topic id exists."""
        async with self.sessionmaker() as session:
            return await self._waiting(session)

    # -- staff's decisions --------------------------------------------------------------------------------

    async def label(self, group_id: int, topic: str, user: str) -> Outcome:
        """The group's questions belong to ``topic``: they become labelled examples to train on."""
        if topic not in self.knowledge.topics(self.registry):
            return Outcome(False, f"`{topic}` is not a topic of this registry: nothing changed.")
        return await self._decide(group_id, "labelled", topic, user)

    async def needs_article(self, group_id: int, topic: str, user: str) -> Outcome:
        """The group needs a new article, to be written with the topic id ``topic``."""
        topic = topic.strip().lower()
        if not TOPIC_ID.fullmatch(topic):
            return Outcome(False, "A topic id is 2 to 63 lower-case letters, digits and dashes.")
        if topic in self.knowledge.topics(self.registry):
            return Outcome(False, f"`{topic}` already has an article: choose it under “belongs to” instead.")
        return await self._decide(group_id, "new_article", topic, user)

    async def ignore(self, group_id: int, user: str) -> Outcome:
        """Nothing to learn from this group."""
        return await self._decide(group_id, "ignored", None, user)

    async def undo(self, group_id: int, user: str) -> Outcome:
        """Take back the decision on a group: its labels are no longer trained on, and it is open again."""
        async with self.sessionmaker() as session, session.begin():
            found = await learning.reopen_group(session, group_id=group_id, by=user, now=self.clock())
        if found is None:
            return Outcome(False, "Nothing to undo: this group has no decision.")
        return Outcome(True, "Undone: the group is open again.")

    async def _decide(self, group_id: int, status: str, topic: str | None, user: str) -> Outcome:
        async with self.sessionmaker() as session, session.begin():
            row = await learning.group(session, group_id)
            if row is None or row.registry_key != self.registry:
                return Outcome(False, "That group is not one of this registry's digests: nothing changed.")
            if not await learning.group_gaps(session, group_id):
                return Outcome(False, "A newer digest holds these questions now: decide there.")
            decided = await learning.decide_group(
                session, group_id=group_id, status=status, topic=topic, by=user, now=self.clock()
            )
        if decided is None:
            return Outcome(False, "This group was already decided: undo that first to change it.")
        return Outcome(True, "Saved.")

    async def created_at(self, group_id: int) -> datetime | None:
        """When the digest holding ``group_id`` was made (it names the digest)."""
        async with self.sessionmaker() as session:
            row = await learning.group(session, group_id)
            return row.created_at if row is not None and row.registry_key == self.registry else None
