"""The registry database: migrations on both backends, the models matching them, the demo data."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import DBAPIError

from bot.app import App
from bot.registry.models import (
    AuditRequest,
    Base,
    Enrollment,
    Member,
    OutboxMessage,
    ProcessedUpdate,
    Sponsor,
    Training,
)
from bot.registry.plain import TurnConnections, TurnTransaction
from bot.registry.repo import enqueue_email
from bot.registry.session import downgrade, make_engine, session_in, unavailable
from tests.conftest import MONDAY_MORNING
from tests.helpers import count_rows

TABLES = {
    "members",
    "sponsors",
    "trainings",
    "enrollments",
    "audit_requests",
    "appeals",
    "documents",
    "escalations",
    "verification_codes",
    "outbox",
    "conversations",
    "transcripts",
    "processed_updates",
    "rate_limits",
    "sms_opt_outs",
    "whatsapp_windows",
    "chat_links",
    "feedback",
    "unanswered_questions",
    "gap_groups",
    "training_labels",
    "alembic_version",
}


async def table_names(app: App) -> set[str]:
    async with app.database.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_migrations_create_every_table_and_downgrade_removes_them(make_app: Callable[..., App]) -> None:
    app = make_app()
    try:
        await app.migrate()
        assert await table_names(app) == TABLES
        await downgrade(app.database)
        assert await table_names(app) <= {"alembic_version"}
        await app.migrate()
        await app.migrate()  # upgrading an up-to-date database changes nothing
        assert await table_names(app) == TABLES
    finally:
        await app.close()


async def test_models_match_the_migrations(app: App) -> None:
    async with app.database.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    assert diff == []


async def test_demo_data_loads_once(app: App) -> None:
    assert await app.seed_demo() == {
        "members": 0,
        "sponsors": 0,
        "trainings": 0,
        "enrollments": 0,
        "audit_requests": 0,
    }
    async with app.sessionmaker() as session:
        assert len((await session.execute(select(Member))).scalars().all()) == 6
        assert len((await session.execute(select(Sponsor))).scalars().all()) == 4
        assert len((await session.execute(select(Enrollment))).scalars().all()) == 11
        denied = (
            await session.execute(select(AuditRequest).where(AuditRequest.reference == "AUD-DEMO-0001"))
        ).scalar_one()
        assert denied.status == "denied" and denied.decided_at is not None


async def test_relative_dates_resolve_in_the_registry_time_zone(app: App) -> None:
    pacific = ZoneInfo("America/Los_Angeles")
    async with app.sessionmaker() as session:
        training = (await session.execute(select(Training).where(Training.key == "T-402"))).scalar_one()
    local = training.starts_at.astimezone(pacific)
    assert local.date() == MONDAY_MORNING.astimezone(pacific).date() + timedelta(days=1)
    assert (local.hour, local.minute) == (18, 30)


async def test_a_turns_bookkeeping_writes_the_same_rows_through_sqlalchemy_and_through_the_driver(
    app: App,
) -> None:
    from bot.registry.models import (
        Conversation,
        Feedback,
        ProcessedUpdate,
        TranscriptEntry,
        UnansweredQuestion,
    )
    from bot.registry.plain import Bookkeeping

    async def one_turn(books: Bookkeeping, user: str) -> tuple[bool, bool, int]:
        first = await books.claim_delivery(channel="c", delivery_id=f"d-{user}", now=MONDAY_MORNING)
        again = await books.claim_delivery(channel="c", delivery_id=f"d-{user}", now=MONDAY_MORNING)
        conversation, member = await books.load_conversation(
            channel="c", user_id=user, registry="ca", language="es", now=MONDAY_MORNING
        )
        assert member is None and conversation.state == {}
        answer = await books.record_answer(
            conversation_id=conversation.id,
            registry="ca",
            topic="forgot-password",
            language="es",
            question="mi ID es 12345678",
            now=MONDAY_MORNING,
        )
        await books.record_unanswered(
            conversation_id=conversation.id,
            registry="ca",
            text="¿y la app?",
            language="es",
            now=MONDAY_MORNING,
        )
        await books.keep_replies(channel="c", delivery_id=f"d-{user}", replies="[]")
        await books.add_transcript(
            conversation_id=conversation.id, entries=[("in", "hola"), ("out", "¡Hola!")], now=MONDAY_MORNING
        )
        await books.save_conversation(
            conversation.id, state={"lang": "es"}, language="es", now=MONDAY_MORNING
        )
        reloaded, _ = await books.load_conversation(
            channel="c", user_id=user, registry="ca", language="en", now=MONDAY_MORNING
        )
        assert (reloaded.id, reloaded.state) == (conversation.id, {"lang": "es"})
        return first, again, answer

    turns = TurnConnections(app.database)
    async with turns.transaction() as transaction:
        through_sqlalchemy = await one_turn(Bookkeeping(transaction.sync), "core")
    async with turns.transaction() as transaction:
        assert type(transaction.books) is not Bookkeeping  # the driver's own path on both backends
        through_the_driver = await one_turn(transaction.books, "driver")
    await turns.close()
    assert through_sqlalchemy[:2] == through_the_driver[:2] == (True, False)

    async def rows_of(user: str) -> list[tuple[object, ...]]:
        async with app.sessionmaker() as session:
            conversation = (
                await session.execute(select(Conversation).where(Conversation.user_id == user))
            ).scalar_one()
            cid = conversation.id
            found: list[tuple[object, ...]] = [
                (conversation.language, conversation.state, conversation.updated_at),
                *[
                    (row.question, row.topic, row.language, row.created_at)
                    for row in (
                        await session.execute(select(Feedback).where(Feedback.conversation_id == cid))
                    ).scalars()
                ],
                *[
                    (row.text, row.kind, row.created_at)
                    for row in (
                        await session.execute(
                            select(UnansweredQuestion).where(UnansweredQuestion.conversation_id == cid)
                        )
                    ).scalars()
                ],
                *[
                    (row.direction, row.text, row.created_at)
                    for row in (
                        await session.execute(
                            select(TranscriptEntry)
                            .where(TranscriptEntry.conversation_id == cid)
                            .order_by(TranscriptEntry.id)
                        )
                    ).scalars()
                ],
                tuple(
                    (
                        await session.execute(
                            select(ProcessedUpdate.replies, ProcessedUpdate.processed_at).where(
                                ProcessedUpdate.delivery_id == f"d-{user}"
                            )
                        )
                    ).one()
                ),
            ]
            return found

    assert await rows_of("core") == await rows_of("driver")
    assert ("mi ID es [number]", "forgot-password", "es", MONDAY_MORNING) in await rows_of("driver")


async def test_a_turns_bookkeeping_and_a_flows_session_commit_or_roll_back_together(app: App) -> None:
    class Refused(Exception):
        pass

    async def write(transaction: TurnTransaction, delivery_id: str) -> None:
        await transaction.books.claim_delivery(channel="c", delivery_id=delivery_id, now=MONDAY_MORNING)
        session = session_in(transaction.connection)  # as a flow's: joins the turn's transaction
        recipient = f"{delivery_id}@example.org"
        enqueue_email(session, recipient=recipient, subject="s", body="b", now=MONDAY_MORNING)
        await session.flush()
        await session.close()  # closing the session must not end the turn's transaction

    turns = TurnConnections(app.database)
    pool = app.database.sync_engine.pool
    with pytest.raises(Refused):
        async with turns.transaction() as transaction:
            await write(transaction, "undone")
            raise Refused
    assert await count_rows(app, ProcessedUpdate, delivery_id="undone") == 0
    assert await count_rows(app, OutboxMessage, recipient="undone@example.org") == 0
    assert pool.checkedout() == 0  # a connection that saw an error goes back to the pool, not kept

    async with turns.transaction() as transaction:
        await write(transaction, "done")
    assert await count_rows(app, ProcessedUpdate, delivery_id="done") == 1
    assert await count_rows(app, OutboxMessage, recipient="done@example.org") == 1
    assert pool.checkedout() == 1  # kept for the next turn
    async with turns.transaction() as transaction:  # which takes it, and finds nothing left over
        assert not await transaction.books.claim_delivery(channel="c", delivery_id="done", now=MONDAY_MORNING)
    await turns.close()
    assert pool.checkedout() == 0


async def test_a_turn_interrupted_never_lends_its_connection_to_a_later_turn(app: App) -> None:
    # a timeout may stop a turn halfway through a statement or its commit: whatever the driver holds of
    # that transaction must end with the connection, never be found by the next turn that takes it
    turns = TurnConnections(app.database)
    ended: list[object] = []
    event.listen(app.database.sync_engine.pool, "invalidate", lambda record, *_: ended.append(record))
    waiting = asyncio.Event()

    async def interrupted_turn() -> None:
        async with turns.transaction() as transaction:
            await transaction.books.claim_delivery(channel="c", delivery_id="cut", now=MONDAY_MORNING)
            waiting.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(interrupted_turn())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(ended) == 1  # closed outright, not rolled back and lent again
    async with turns.transaction() as transaction:
        assert await transaction.books.claim_delivery(channel="c", delivery_id="next", now=MONDAY_MORNING)
    await turns.close()
    assert await count_rows(app, ProcessedUpdate, delivery_id="cut") == 0
    assert await count_rows(app, ProcessedUpdate, delivery_id="next") == 1


async def test_a_connection_the_server_dropped_is_never_lent_to_a_later_turn(app: App) -> None:
    if app.database.dialect.name != "postgresql":
        pytest.skip("a server dropping a connection is PostgreSQL's")
    settings = app.settings
    database = make_engine(
        settings.database_url, schema=settings.database_schema, pool_size=1, max_overflow=0
    )
    turns = TurnConnections(database)

    async def claim(delivery_id: str) -> bool:
        async with turns.transaction() as transaction:
            return await transaction.books.claim_delivery(
                channel="c", delivery_id=delivery_id, now=MONDAY_MORNING
            )

    async def server_ends(transaction: TurnTransaction) -> None:
        driver = transaction.sync.connection.driver_connection
        async with app.database.connect() as admin:  # as a restart of the server would
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.get_server_pid()})
        async with asyncio.timeout(10):
            while not driver.is_closed():  # until the driver has heard of it
                await asyncio.sleep(0.01)

    try:
        async with turns.transaction() as transaction:  # kept afterwards, then ended while idle
            await transaction.books.claim_delivery(channel="c", delivery_id="one", now=MONDAY_MORNING)
        await server_ends(transaction)
        assert await claim("two")  # on a sound connection: the member never notices
        with pytest.raises(DBAPIError) as refused:
            async with turns.transaction() as transaction:  # ended in the middle of a turn
                await transaction.books.claim_delivery(channel="c", delivery_id="lost", now=MONDAY_MORNING)
                await server_ends(transaction)
                await transaction.books.keep_replies(channel="c", delivery_id="lost", replies="[]")
        assert unavailable(refused.value)  # the member is asked to send it again
        assert await claim("three")  # the pool's one connection, sound again
    finally:
        await turns.close()
        await database.dispose()
    kept = ProcessedUpdate.delivery_id.in_(("one", "two", "three"))
    assert await count_rows(app, ProcessedUpdate, kept) == 3
    assert await count_rows(app, ProcessedUpdate, delivery_id="lost") == 0


async def test_a_turn_ending_after_shutdown_keeps_no_connection(app: App) -> None:
    turns = TurnConnections(app.database)
    pool = app.database.sync_engine.pool
    async with turns.transaction() as transaction:
        await turns.close()  # the engine closes while this turn still runs
        await transaction.books.claim_delivery(channel="c", delivery_id="late", now=MONDAY_MORNING)
    assert pool.checkedout() == 0
    assert await count_rows(app, ProcessedUpdate, delivery_id="late") == 1
