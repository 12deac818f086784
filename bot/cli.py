"""The ``registry-bot`` command line: thin; it parses arguments and calls the application.

Each command imports what it uses when it runs: ``ask`` needs the knowledge base and one topic model, not
the database, the flows or SQLAlchemy; ``chat`` needs them all.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import Settings
    from bot.intents import Understander
    from bot.knowledge import KnowledgeBase
    from bot.server import Channel
    from bot.understanding.model import TopicModel

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    from bot.config import LANGUAGES

    parser = argparse.ArgumentParser(
        prog="registry-bot", description="Help desk assistant for ECE workforce registries"
    )
    registry_help = "registry profile (ca, ct); default REGISTRY_BOT_REGISTRY or ca"
    parser.add_argument("--registry", help=registry_help)
    # --registry also after the command (`registry-bot ask --json --registry ct`); absent there, the value
    # given before the command (or none) stands
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", default=argparse.SUPPRESS, help=registry_help)
    commands = parser.add_subparsers(dest="command", required=True)
    add_command = functools.partial(commands.add_parser, parents=[common])

    chat = add_command("chat", help="chat in the terminal (piped stdin: one message per line)")
    chat.add_argument("--user", default="console", help="the chat user id (default: console)")
    chat.add_argument("--lang", choices=LANGUAGES, help="starting language")

    ask = add_command("ask", help="which topic would answer each question on stdin")
    ask.add_argument("--json", action="store_true", help="one JSON object per line")
    ask.add_argument("--lang", default="auto", choices=("auto", *LANGUAGES))

    evaluate = add_command("eval", help="score question files (JSON lines); default every file in eval/")
    evaluate.add_argument("file", type=Path, nargs="*")
    evaluate.add_argument("--verbose", "-v", action="store_true", help="list every miss")

    database = add_command("db", help="database: upgrade, downgrade, seed-demo")
    database.add_argument("action", choices=("upgrade", "downgrade", "seed-demo"))
    database.add_argument("--revision", default=None)

    knowledge = add_command(
        "kb",
        help="knowledge base: check it (and that each model is up to date), train the models, roll one "
        "back, or review staff's labels",
    )
    kb = knowledge.add_subparsers(dest="action", required=True)
    kb.add_parser("check", parents=[common], help="check the articles and that each model is up to date")
    training = kb.add_parser(
        "train",
        parents=[common],
        help="train the models on the articles, training/*.jsonl and staff's labels (every registry, or the "
        "one --registry names); a model worse on an evaluation file than the one in use is refused",
    )
    training.add_argument(
        "--training",
        type=Path,
        nargs="*",
        help="question files to train on (default training/*.jsonl); evaluation files are refused",
    )
    training.add_argument(
        "--if-changed",
        action="store_true",
        help="train only a registry whose articles, training files or labels changed since its model",
    )
    training.add_argument(
        "--force", action="store_true", help="install the new model even when it does worse (exit 0)"
    )
    kb.add_parser(
        "rollback", parents=[common], help="swap the registry's model and the one it replaced (again: undo)"
    )
    labels = kb.add_parser("labels", parents=[common], help="staff's labels: list, export, undo")
    label_actions = labels.add_subparsers(dest="labels_action", required=True)
    label_actions.add_parser(
        "list", parents=[common], help="every label (of --registry if given), undone ones too"
    )
    export = label_actions.add_parser(
        "export", parents=[common], help="the labels trained on, as a question file (JSON lines)"
    )
    export.add_argument("--output", type=Path, help="write to FILE (default: standard output)")
    undo = label_actions.add_parser("undo", parents=[common], help="undo one label: no longer trained on")
    undo.add_argument("id", type=int, help="the label's number (kb labels list)")

    serve = add_command(
        "serve", help="run the web chat and every configured channel on one HTTP server, with /healthz"
    )
    serve.add_argument("--host", help="interface to listen on (default REGISTRY_BOT_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default REGISTRY_BOT_PORT or 8080)")

    add_command("purge", help="delete personal data older than its retention (see README, Privacy)")

    bench = add_command(
        "bench", help="measure speed: retrieval, and turns on SQLite and PostgreSQL with simulated members"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument(
        "--postgres-url",
        help="PostgreSQL to measure on, in a schema of its own (default REGISTRY_BOT_BENCH_POSTGRES_URL, "
        "else the local server when reachable); 'none' for SQLite only",
    )
    bench.add_argument("--seconds", type=float, default=4.0, help="length of each measured phase (default 4)")
    bench.add_argument("--members", type=int, default=200, help="members chatting at once (default 200)")
    bench.add_argument(
        "--concurrency",
        type=int,
        help="turns inside the engine at once (default 1 on SQLite, 4 on PostgreSQL)",
    )
    bench.add_argument("--no-pin", action="store_true", help="do not pin the bench to one CPU core")

    outbox = add_command("outbox", help="list e-mail waiting in the outbox, or send it")
    outbox.add_argument("--all", action="store_true", help="include e-mail already sent")
    outbox.add_argument("--send", action="store_true", help="deliver what is due over SMTP now")
    return parser


class _StartUp:
    """No garbage collection while a command starts up.

    Start-up creates hundreds of thousands of objects that live until the process ends (modules, classes,
    the knowledge base, the topic model); the collector, run every few hundred allocations, would walk
    them again and again and find nothing to free (a third of ``chat``'s start-up on this machine). It is
    paused until the command is ready for its first input (``ready``); in the process's own command line
    (``main()`` without ``argv``) what start-up built is then frozen (``gc.freeze``): kept out of every
    later collection, the one at exit too.
    """

    def __init__(self) -> None:
        self.paused = False
        self.freeze = False

    def begin(self, *, freeze: bool) -> None:
        self.paused, self.freeze = gc.isenabled(), freeze
        gc.disable()

    def ready(self) -> None:
        """Start-up is over: collect again from now on."""
        if self.paused:
            if self.freeze:
                gc.freeze()
            gc.enable()
            self.paused = False


_startup = _StartUp()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (``argv``, default the process's own arguments); its exit status."""
    _startup.begin(freeze=argv is None)
    try:
        return _main(argv)
    finally:
        _startup.ready()


def _main(argv: Sequence[str] | None) -> int:
    from bot.config import Settings, load_profile
    from bot.logs import configure as configure_logging

    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    registry = args.registry or settings.registry
    try:
        load_profile(registry, settings)
    except ValueError as exc:
        print(f"registry-bot: {exc}", file=sys.stderr)
        return 2
    handler = {
        "chat": _chat,
        "ask": _ask,
        "eval": _eval,
        "db": _db,
        "kb": _kb,
        "outbox": _outbox,
        "purge": _purge,
        "serve": _serve,
        "bench": _bench,
    }[args.command]
    if args.command not in ("chat", "ask", "serve"):  # they say when they are ready for their first input
        _startup.ready()
    return handler(args, settings, registry)


def _chat(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.app import App
    from bot.channels import console

    async def run() -> None:
        app = App.build(settings, registry=registry)
        try:
            await app.migrate()
            await app.seed_demo()
            _startup.ready()
            await console.run(
                app.engine, user_id=args.user, language=args.lang, stdin=sys.stdin, stdout=sys.stdout
            )
        finally:
            await app.close()

    asyncio.run(run())
    return 0


def serve_address(args: argparse.Namespace, settings: Settings) -> tuple[str, int]:
    """(host, port) to listen on: the command line wins over REGISTRY_BOT_HOST and REGISTRY_BOT_PORT."""
    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    return host, port


def _channels(app: App, settings: Settings) -> list[Channel]:
    """The channels ``serve`` hosts: the web chat always; Telegram and Slack when their tokens are set."""
    from bot.channels.web import WebChat

    channels: list[Channel] = [WebChat(app)]
    if settings.telegram_token is not None:
        from bot.channels.telegram import TelegramChannel

        channels.append(TelegramChannel(app.engine, settings))
    whatsapp = (settings.whatsapp_token, settings.whatsapp_app_secret, settings.whatsapp_verify_token)
    if settings.whatsapp_phone_number_id and all(secret is not None for secret in whatsapp):
        from bot.channels.whatsapp import WhatsAppChannel

        channels.append(WhatsAppChannel(app.engine, settings))
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from:
        from bot.channels.sms import SmsChannel

        channels.append(SmsChannel(app.engine, settings))
    if settings.slack_enabled:
        from bot.channels.slack import SlackChannel

        channels.append(SlackChannel(app.helpdesk, settings, app.gaps))
    return channels


def _serve(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.app import App
    from bot.channels import web
    from bot.server import connect

    host, port = serve_address(args, settings)
    if not 0 <= port <= 65535:
        print(f"registry-bot: invalid port {port}", file=sys.stderr)
        return 2

    async def run() -> None:
        app = App.build(settings, registry=registry)
        try:
            await app.migrate()
            if app.database.dialect.name == "sqlite":
                # the embedded database: a new user sees the demo registry at once
                await app.seed_demo()
            channels = _channels(app, settings)
            connect(app, channels)
            _startup.ready()
            names = ", ".join(channel.name for channel in channels)
            print(f"registry-bot: serving {names} on http://{host}:{port}/ (Ctrl-C to stop)", file=sys.stderr)
            await web.serve(app, channels, host=host, port=port)
        finally:
            await app.close()

    with asyncio.Runner(loop_factory=_server_loop()) as runner:
        runner.run(run())
    return 0


def _server_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop for ``serve`` where it is installed (not on Windows), else asyncio's own.

    Its sockets and callbacks run in C: each web chat request costs about a tenth less of what it costs
    around the engine (``registry-bot bench``, http).
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _understander(settings: Settings, registries: Sequence[str] | None = None) -> Understander:
    """The knowledge base and the topic models of ``registries`` (default: every registry's)."""
    from bot.intents import Understander
    from bot.knowledge import load_knowledge
    from bot.understanding.store import ModelStore

    knowledge = load_knowledge(settings.content_dir / "knowledge")
    wanted = tuple(registries) if registries is not None else tuple(knowledge.registries())
    return Understander(knowledge, ModelStore(settings.content_dir, wanted))


def _ask(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.evaluation import ask

    understander = _understander(settings, [registry])  # the registry's own model only
    _startup.ready()
    for line in sys.stdin:
        question = line.rstrip("\n")
        if not question.strip():
            continue
        record = ask(understander, question, registry=registry, lang=args.lang)
        if args.json:
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print(
                f"{record['topic'] or '-'}\t{record['score']:.2f}\t{record['lang']}\t{question}", flush=True
            )
    return 0


def _eval(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.evaluation import evaluate
    from bot.understanding.store import evaluation_files

    files = args.file or evaluation_files(settings.content_dir)
    missing = [path for path in files if not path.is_file()]
    if missing:
        print(f"registry-bot: no such file: {missing[0]}", file=sys.stderr)
        return 2
    from bot.understanding.store import training_files
    from bot.understanding.train import trained_on

    understander = _understander(settings)
    seen = trained_on(understander.knowledge, training_files(settings.content_dir))
    for number, path in enumerate(files):
        report = evaluate(understander, path, trained_on=seen)
        if len(files) > 1:
            print(("\n" if number else "") + f"== {path}")
        print("\n".join(report.lines()))
        if args.verbose:
            for failure in report.failures:
                print(json.dumps(failure, ensure_ascii=False))
    return 0


def _db(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.app import App
    from bot.registry.session import downgrade

    async def run() -> None:
        app = App.build(settings, registry=registry)
        try:
            if args.action == "upgrade":
                await app.migrate()
                print("database is up to date")
            elif args.action == "downgrade":
                await downgrade(app.database, args.revision or "base")
                print(f"database downgraded to {args.revision or 'base'}")
            else:
                await app.migrate()
                added = await app.seed_demo()
                print("demo data loaded: " + ", ".join(f"{count} {kind}" for kind, count in added.items()))
        finally:
            await app.close()

    asyncio.run(run())
    return 0


def _kb(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot import wording
    from bot.flows import FLOWS
    from bot.knowledge import KnowledgeBase, check

    root = settings.content_dir / "knowledge"
    # --registry on the command line narrows train and the labels; without it they take every registry
    named = getattr(args, "registry", None)
    if args.action == "train":
        return _train(args, settings, KnowledgeBase.load(root), named)
    if args.action == "rollback":
        return _rollback(settings, registry)
    if args.action == "labels":
        return _labels(args, settings, named)
    problems = check(root, known_flows=FLOWS) + wording.check(settings.content_dir)
    if not problems:
        from bot.understanding.train import stale_models

        problems = stale_models(KnowledgeBase.load(root), settings.content_dir)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)")
        return 1
    print("knowledge base is sound; every model is up to date")
    return 0


def _train(args: argparse.Namespace, settings: Settings, knowledge: KnowledgeBase, named: str | None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.app import staff_labels
    from bot.understanding.model import ModelError, TopicModel
    from bot.understanding.retrain import (
        held_out,
        label_examples,
        labels_hash,
        train_with_labels,
        up_to_date,
    )
    from bot.understanding.store import (
        evaluation_files,
        install,
        model_path,
        previous_path,
        training_files,
    )
    from bot.understanding.train import TrainingError, inputs_hash, refuse_evaluation_files

    content = settings.content_dir
    training = args.training if args.training is not None else training_files(content)
    try:
        refuse_evaluation_files(training, evaluation_files(content))
    except TrainingError as error:
        print(f"registry-bot: {error}", file=sys.stderr)
        return 2
    try:
        stored = asyncio.run(staff_labels(settings))
    except (SQLAlchemyError, OSError) as error:
        print(f"registry-bot: cannot read staff's labels: {_unreachable(error)}", file=sys.stderr)
        return 2
    refused = False
    for each in [named] if named else knowledge.registries():
        labels, warnings = label_examples(
            stored, each, knowledge.topics(each), held_out=held_out(evaluation_files(content), each)
        )
        for warning in warnings:
            print(f"registry-bot: warning: {warning}", file=sys.stderr)
        path = model_path(content, each)
        try:
            current = TopicModel.load(path) if path.is_file() else None
        except ModelError as error:
            print(f"registry-bot: warning: {error}; nothing to compare the new model with", file=sys.stderr)
            current = None
        inputs = inputs_hash(content / "knowledge", each, training)
        if (
            args.if_changed
            and current is not None
            and up_to_date(current, inputs=inputs, labels=labels_hash(labels))
        ):
            print(f"{each}: up to date")
            continue
        try:
            arrays = train_with_labels(
                knowledge, each, knowledge_root=content / "knowledge", training=training, labels=labels
            )
        except TrainingError as error:
            print(f"registry-bot: {error}", file=sys.stderr)
            return 2
        info = json.loads(str(arrays["info"]))
        if current is not None and not _passes_guard(
            args, knowledge, registry=each, current=current, arrays=arrays, settings=settings
        ):
            refused = True
            continue
        kept = install(arrays, content, each)
        print(
            f"{each}: {info['examples']} examples ({info.get('labels', 0)} staff labels), "
            f"thresholds {info['thresholds']}"
            + (f"; the model it replaced is kept as {previous_path(content, each)}" if kept else "")
        )
    return 3 if refused else 0


def _passes_guard(
    args: argparse.Namespace,
    knowledge: KnowledgeBase,
    *,
    registry: str,
    current: TopicModel,
    arrays: dict[str, Any],
    settings: Settings,
) -> bool:
    """Whether a new model may replace ``current``: not worse on any evaluation file, or ``--force``.
    Prints the figures of both per file."""
    from bot.evaluation import compare
    from bot.understanding.model import TopicModel
    from bot.understanding.store import evaluation_files, model_path

    new = TopicModel(arrays)
    comparisons = compare(
        knowledge, registry, current=current, new=new, files=evaluation_files(settings.content_dir)
    )
    print(f"{registry}: the model in use and the new one on the evaluation files")
    for comparison in comparisons:
        print("\n".join(comparison.lines()))
    if not any(comparison.worse for comparison in comparisons):
        return True
    if args.force:
        print(f"{registry}: the new model does worse; installed anyway (--force)")
        return True
    print(
        f"{registry}: the new model does worse than the one in use; not installed "
        f"({model_path(settings.content_dir, registry)} is unchanged; --force installs it anyway)"
    )
    return False


def _unreachable(error: BaseException) -> str:
    """What a tool says of a database it cannot reach (SQLAlchemy's first line, not its link)."""
    return "the database cannot be reached (" + (str(error).splitlines() or [type(error).__name__])[0] + ")"


def _rollback(settings: Settings, registry: str) -> int:
    from bot.understanding.model import TopicModel
    from bot.understanding.store import model_path, previous_path, rollback

    if not rollback(settings.content_dir, registry):
        print(f"registry-bot: {registry} has no previous model to roll back to", file=sys.stderr)
        return 2
    current = TopicModel.load(model_path(settings.content_dir, registry))
    print(
        f"{registry}: the previous model is in use again ({current.info.get('labels', 0)} staff labels, "
        f"inputs {current.inputs_hash[:12]}); the one it replaced is now "
        f"{previous_path(settings.content_dir, registry)} (kb rollback again puts it back)"
    )
    return 0


def _labels(args: argparse.Namespace, settings: Settings, named: str | None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.app import staff_labels, undo_staff_label
    from bot.engine import utcnow
    from bot.understanding.retrain import question_line

    try:
        if args.labels_action == "undo":
            undone = asyncio.run(undo_staff_label(settings, args.id, by="cli", now=utcnow()))
            if undone is None:
                print(f"registry-bot: there is no active label {args.id}", file=sys.stderr)
                return 2
            print(f"label {undone.id} undone ({undone.registry}, {undone.topic}): {undone.text}")
            return 0
        active = args.labels_action == "export"
        found = asyncio.run(staff_labels(settings, registry=named, active=active))
    except (SQLAlchemyError, OSError) as error:
        print(f"registry-bot: {_unreachable(error)}", file=sys.stderr)
        return 2
    if args.labels_action == "list":
        for label in found:
            done = (
                f"undone by {label.undone_by} {label.undone_at:%Y-%m-%d %H:%M}"
                if label.undone_at
                else "active"
            )
            print(
                f"{label.id}\t{label.registry}\t{label.topic}\t{label.language}\t"
                f"{label.labelled_by} {label.labelled_at:%Y-%m-%d %H:%M}\t{done}\t{label.text}"
            )
        if not found:
            print("no labels")
        return 0
    lines = "".join(
        question_line(label.text, lang=label.language, registry=label.registry, topic=label.topic) + "\n"
        for label in found
    )
    if args.output is None:
        sys.stdout.write(lines)
    else:
        args.output.write_text(lines, encoding="utf-8")
        print(f"{len(found)} label(s) written to {args.output}", file=sys.stderr)
    return 0


def _purge(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.app import App

    async def run() -> dict[str, int]:
        app = App.build(settings, registry=registry)
        try:
            await app.migrate()
            return await app.purge()
        finally:
            await app.close()

    counts = asyncio.run(run())
    print("purged: " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items()))
    return 0


def _outbox(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.app import App
    from bot.engine import utcnow
    from bot.mail import OutboxSender, pending

    async def run() -> int:
        app = App.build(settings, registry=registry)
        try:
            await app.migrate()
            if args.send:
                sender = OutboxSender(settings, app.sessionmaker)
                if not sender.configured:
                    print("registry-bot: set REGISTRY_BOT_SMTP_HOST to send e-mail", file=sys.stderr)
                    return 2
                print(f"{await sender.deliver_due(utcnow())} e-mail(s) sent")
                return 0
            messages = await pending(app.sessionmaker, include_sent=args.all)
            for message in messages:
                state = f"sent {message.sent_at:%Y-%m-%d %H:%M}" if message.sent_at else "waiting"
                print(f"--- #{message.id} to {message.recipient} ({state})")
                print(f"Subject: {message.subject}\n\n{message.body}")
            if not messages:
                print("the outbox is empty")
            return 0
        finally:
            await app.close()

    return asyncio.run(run())


def _bench(args: argparse.Namespace, settings: Settings, registry: str) -> int:
    from bot.bench import Options, default_postgres_url, format_text, run_bench

    if args.seconds <= 0 or args.members < 1 or (args.concurrency is not None and args.concurrency < 1):
        print("registry-bot: --seconds, --members and --concurrency must be positive", file=sys.stderr)
        return 2
    postgres = args.postgres_url or default_postgres_url()
    options = Options(
        seconds=args.seconds,
        members=args.members,
        concurrency=args.concurrency,
        postgres_url=None if postgres.lower() == "none" else postgres,
        pin=not args.no_pin,
    )

    def progress(message: str) -> None:
        print(f"registry-bot bench: {message}", file=sys.stderr, flush=True)

    result = asyncio.run(run_bench(settings, options, registry=registry, report=progress))
    print(json.dumps(result) if args.json else format_text(result))
    return 0
