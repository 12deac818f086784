"""The fault run (README, "Faults"): several serve processes on PostgreSQL, members on the web and on
Telegram, processes killed and the database cut off or stalled at random; then the account.

    python scripts/fault_run.py --processes 3 --seconds 180

Exits 1 when a message was lost or stored twice, a reply or an e-mail went missing, or more went twice
than there were crashes. Needs PostgreSQL (``--postgres``, default the test server); a schema is created
for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.registry.session import make_engine
from tests.faults import FaultRun


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--web-members", type=int, default=12)
    parser.add_argument("--telegram-members", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    schema = f"faults_{uuid.uuid4().hex[:10]}"
    admin = make_engine(args.postgres)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="fault-run-") as workdir:
            run = FaultRun(
                postgres_url=args.postgres,
                schema=schema,
                workdir=Path(workdir),
                processes=args.processes,
                seconds=args.seconds,
                web_members=args.web_members,
                telegram_members=args.telegram_members,
                seed=args.seed,
            )
            report = await run.run()
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
    print("\n".join(report.lines()))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
