"""`tingshen`: serve, migrate, seed the demo court, manage staff accounts and integrations' API
tokens, verify the audit chain, render composites, load-test a server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError
from tqdm import tqdm

from config import Settings, SettingsError, ensure_admin_token, load_settings
from config.logs import configure_logging
from config.timezone import local_text, zone_label
from courtrooms.access import Scope
from courtrooms.accounts import NewPassword, StaffAccounts
from courtrooms.database import Database, migrate
from courtrooms.errors import CourtroomsError, SigningKeyError
from courtrooms.integrity import verify_record
from courtrooms.models import StaffRole, utcnow
from courtrooms.recordings import Recordings
from courtrooms.registry import Registry
from courtrooms.schemas import ApiTokenIn, StaffAccountIn
from courtrooms.seed import Demo, seed_demo
from courtrooms.tokens import ApiTokens
from courtrooms.transcripts import Transcripts
from media.errors import CompositeError
from signaling.retranscribe import NothingToTranscribe, retranscribe
from signaling.review import render_hearing
from transcription.errors import TranscriptionError
from transcription.model import machine_threads
from web.app import create_app
from web.keys import REGISTRY, STAFF_ACCOUNTS
from web.loadtest.cli import add_arguments as add_loadtest_arguments
from web.loadtest.cli import main as loadtest
from web.pages import court_time
from web.workers import Supervisor, worker_command

log = logging.getLogger("tingshen")
PROGRESS_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("host", "port")}
    return load_settings(config_file=args.config, **overrides)


def print_demo(demo: Demo, settings: Settings) -> None:
    base = settings.base_url
    print(f"\nDemo hearing {demo.hearing.case_number}: {demo.hearing.title}")
    zone = settings.court_zone
    start = demo.hearing.scheduled_start
    print(f"  scheduled {court_time(start, zone)} – "
          f"{court_time(demo.hearing.scheduled_end, zone)} "
          f"({zone_label(zone, start, 'en')})")
    for invite in demo.invites:
        print(f"  {invite.role.value:<10} {invite.name:<8} {base}/join/{invite.token}")
    for staff in demo.staff:
        role = "/".join(staff.account.roles)
        print(f"  staff {role:<10} {staff.account.name:<6} login {staff.account.login}  "
              f"password {staff.password}  (new at each start)")
    if demo.terminal_key is not None:
        print(f"  prison terminal {demo.terminal.name} device key: {demo.terminal_key}"
              f"  (kiosk: {base}/terminal)")
    else:
        # The kiosk keeps the key it was given when the terminal was created.
        print(f"  prison terminal {demo.terminal.name}: device key unchanged (shown when it "
              f"was created; lost: POST /api/v1/prison-terminals/{demo.terminal.id}/rotate-key)")


def print_staff_links(settings: Settings, token: str, generated: bool,
                      first: NewPassword | None = None) -> None:
    if first is not None:
        print(f"\nStaff sign-in: login {first.account.login} password {first.password}  "
              f"(the first administrator, created now; shown once: `tingshen user passwd "
              f"{first.account.login}` sets another, `tingshen user add` adds staff)")
    else:
        print("\nStaff sign-in: with your account (an administrator adds one: "
              "`tingshen user add`)")
    if not settings.keep_admin_token:
        # An administrator exists now (created above if there was none): the admin token is
        # refused, and printing it would only invite its use.
        print("Integrations: an API token each, `tingshen token add NAME --scope schedule` "
              "(the admin token is off while an administrator account exists; "
              "TINGSHEN_KEEP_ADMIN_TOKEN=true keeps it)")
    elif settings.admin_token:
        # The operator set it and knows it; a secret from the environment is not echoed into
        # terminals and logs.
        print("API token (bearer, for integrations): the one set in TINGSHEN_ADMIN_TOKEN")
    else:
        origin = "generated now, kept in" if generated else "from"
        print(f"API token (bearer, for integrations; {origin} "
              f"{settings.data_dir / 'admin_token'}): {token}")
    base = settings.base_url
    print(f"Scheduling {base}/schedule   Live now {base}/live   Review {base}/review")
    print(f"Judges and clerks: their hearings at {base}/my (they enter from there, no link)")
    print(f"API: {base}/api/v1/openapi.json   (Ctrl-C stops)", flush=True)


SETUP_ACTOR = "system:setup"
CLI_ACTOR = "system:cli"


async def _first_administrator(settings: Settings) -> NewPassword | None:
    db = Database(settings.database)
    try:
        return await StaffAccounts(db).ensure_administrator(SETUP_ACTOR)
    finally:
        await db.aclose()


async def _serve(settings: Settings, seed: bool, worker: bool = False) -> int:
    """One server process; as a `worker` of `serve --workers N`, quiet and sharing the port."""
    token, generated = ensure_admin_token(settings)
    app = create_app(settings, run_migrations=not worker)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
    except (TranscriptionError, RedisError, OSError, SigningKeyError) as e:
        print(f"tingshen: cannot start: {e}", file=sys.stderr)
        await runner.cleanup()
        return 2
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=worker or None)
        await site.start()
        if worker:
            # One write, so that workers starting together never run their lines into one.
            sys.stdout.write(f"Worker {os.getpid()} listening on {settings.base_url}\n")
            sys.stdout.flush()
        else:
            print(f"Tingshen listening on {settings.base_url}")
            first = await app[STAFF_ACCOUNTS].ensure_administrator(SETUP_ACTOR)
            if seed:
                print_demo(await seed_demo(app[REGISTRY], settings.default_language), settings)
            print_staff_links(settings, token, generated, first)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def _supervise(settings: Settings, args: argparse.Namespace) -> int:
    if settings.redis_url is None:
        print("tingshen serve: --workers needs Redis (redis_url or TINGSHEN_REDIS_URL) to share "
              "hearings between the workers", file=sys.stderr)
        return 2
    token, generated = ensure_admin_token(settings)
    first = asyncio.run(_first_administrator(settings))
    if args.seed_demo:
        asyncio.run(_seed(settings))
    print(f"Tingshen listening on {settings.base_url} with {args.workers} workers "
          f"(Redis {settings.redis_url})")
    print_staff_links(settings, token, generated, first)
    if not settings.whisper_decodes:
        # Each worker loads its own recognizer: the cores are shared, not each taken whole
        # (docs/operations.md, sizing).
        os.environ["TINGSHEN_WHISPER_DECODES"] = str(machine_threads(args.workers))
    return Supervisor(worker_command(args.config, args.host, args.port), args.workers).run()


async def _seed(settings: Settings) -> None:
    db = Database(settings.database)
    try:
        demo = await seed_demo(Registry(db), settings.default_language)
    finally:
        await db.aclose()
    print_demo(demo, settings)


async def _verify(settings: Settings) -> int:
    db = Database(settings.database)
    try:
        report = await verify_record(db, settings.data_dir, settings.signing_key,
                                     settings.checkpoints)
    finally:
        await db.aclose()
    chain = report.chain
    if not chain.ok:
        print(f"audit chain broken at event {chain.broken_seq}: {chain.reason}",
              file=sys.stderr)
    for finding in report.findings:
        when = (f" [{local_text(finding.at, settings.court_zone, 'en')}]"
                if finding.at is not None else "")
        print(f"{finding.message}{when}", file=sys.stderr)
    if report.anchored:
        anchored = f"{report.checkpoints} checkpoints and {report.seals} seals signed"
    else:
        anchored = f"not anchored: no signing key at {settings.signing_key}"
    if report.ok:
        print(f"audit chain intact: {chain.events} events; {anchored}; sealed recordings "
              "match, and so do the sealed trial records, every recording, composite and "
              "exhibit")
        return 0
    print(f"verification failed: {len(report.findings) + (not chain.ok)} problems",
          file=sys.stderr)
    return 1


class PasswordUnread(Exception):
    """No password could be read (none given, or the two typed differ)."""


def read_password(prompt: str = "Password") -> str:
    """A password typed twice at a terminal, or the first line of stdin (a script's pipe):
    never from the command line, where `ps` and the shell's history would keep it."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"{prompt}: ")
        if getpass.getpass(f"{prompt} again: ") != first:
            raise PasswordUnread("the two passwords typed differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise PasswordUnread("no password on stdin (give it as the first line)")
    return line.rstrip("\r\n")


async def _user(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.database)
    accounts = StaffAccounts(db)
    try:
        if args.user_command == "list":
            for account in await accounts.accounts():
                state = "disabled" if account.disabled else "enabled"
                print(f"{account.login:<20} {account.name:<10} {','.join(account.roles):<28} "
                      f"{state}")
            return 0
        if args.user_command == "disable":
            ended = await accounts.disable(args.login, CLI_ACTOR)
            print(f"account {args.login} disabled; {ended} open sessions ended")
            return 0
        password = read_password()
        if args.user_command == "add":
            court_id = await accounts.court_named(args.court) if args.court else None
            roles = [StaffRole(r) for r in dict.fromkeys(args.role)]
            data = StaffAccountIn(name=args.name, login=args.login, court_id=court_id,
                                  roles=roles)
            account = await accounts.add(data, password, CLI_ACTOR)
            print(f"account {account.login} added: {account.name}, "
                  f"{', '.join(account.roles)}")
            return 0
        ended = await accounts.set_password(args.login, password, CLI_ACTOR)
        print(f"password of {args.login} changed; {ended} open sessions ended")
        return 0
    except (CourtroomsError, PasswordUnread) as e:
        print(f"tingshen user {args.user_command}: {e}", file=sys.stderr)
        return 1
    except ValidationError as e:
        problem = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in problem["loc"])
        print(f"tingshen user {args.user_command}: {where}: {problem['msg']}", file=sys.stderr)
        return 2
    finally:
        await db.aclose()


async def _token(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.database)
    tokens = ApiTokens(db)
    try:
        if args.token_command == "list":
            zone = settings.court_zone
            for token in await tokens.tokens():
                used = (local_text(token.last_used_at, zone, "en")
                        if token.last_used_at is not None else "never used")
                state = ("revoked " + local_text(token.revoked_at, zone, "en")
                         if token.revoked_at is not None else "active")
                print(f"{token.id}  {token.name:<16} {','.join(token.scopes):<36} "
                      f"last used {used}; {state}")
            return 0
        if args.token_command == "revoke":
            token = await tokens.revoke((await tokens.named(args.token)).id, CLI_ACTOR)
            print(f"API token {token.name} ({token.id}) revoked: its next request is refused")
            return 0
        court_id = (await StaffAccounts(db).court_named(args.court)
                    if args.court else None)
        data = ApiTokenIn(name=args.name, scopes=[Scope(s) for s in dict.fromkeys(args.scope)],
                          court_id=court_id)
        made = await tokens.add(data, CLI_ACTOR)
        print(f"API token {made.token.name} ({made.token.id}) added: "
              f"{', '.join(made.token.scopes)}")
        # The secret on stdout alone, for a script to capture; it is never shown again.
        print(made.secret)
        return 0
    except CourtroomsError as e:
        print(f"tingshen token {args.token_command}: {e}", file=sys.stderr)
        return 1
    except ValidationError as e:
        problem = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in problem["loc"])
        print(f"tingshen token {args.token_command}: {where}: {problem['msg']}",
              file=sys.stderr)
        return 2
    finally:
        await db.aclose()


@contextlib.contextmanager
def progress_bar(desc: str) -> Iterator[Callable[[float], None]]:
    """A percentage bar on stderr, advanced by fractions from 0 to 1."""
    with tqdm(total=100, unit="%", desc=desc, bar_format=PROGRESS_FORMAT) as bar:

        def advance(fraction: float) -> None:
            bar.update(round(fraction * 100) - bar.n)

        yield advance


def _hearing_id(command: str, hearing: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(hearing)
    except ValueError:
        print(f"tingshen {command}: {hearing!r} is not a hearing id", file=sys.stderr)
        return None


async def _retranscribe(settings: Settings, hearing: str, model: str, beam_size: int) -> int:
    hearing_id = _hearing_id("retranscribe", hearing)
    if hearing_id is None:
        return 2
    db = Database(settings.database)
    try:
        registry = Registry(db)
        with progress_bar("retranscribe") as advance:
            version, lines = await retranscribe(
                registry, Recordings(db, utcnow, settings.data_dir), Transcripts(db, utcnow),
                hearing_id, model, settings.data_dir, beam_size, advance,
            )
    except (CourtroomsError, TranscriptionError, NothingToTranscribe) as e:
        print(f"tingshen retranscribe: {e}", file=sys.stderr)
        return 1
    finally:
        await db.aclose()
    print(f"trial record version {version}: {lines} lines ({model}, beam size {beam_size})")
    return 0


async def _render(settings: Settings, hearing: str) -> int:
    hearing_id = _hearing_id("render", hearing)
    if hearing_id is None:
        return 2
    db = Database(settings.database)
    try:
        registry = Registry(db)
        recordings = Recordings(db, utcnow, settings.data_dir)
        with progress_bar("composite") as advance:
            path = await render_hearing(registry, recordings, hearing_id, advance,
                                        threading.Event(), zone=settings.court_zone)
    except (CourtroomsError, CompositeError) as e:
        print(f"tingshen render: {e}", file=sys.stderr)
        return 1
    finally:
        await db.aclose()
    print(f"composite written: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tingshen", description=__doc__)
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML settings file (default: $TINGSHEN_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="migrate the database and start the server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--seed-demo", action="store_true",
                       help="also schedule the demo hearing and print its join links")
    serve.add_argument("--workers", type=int, default=1, choices=range(1, 65), metavar="N",
                       help="server processes sharing the port (N > 1 needs redis_url)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("seed-demo", help="schedule a demo hearing starting now; print its links")
    sub.add_parser("verify-audit", help="check the audit chain against its signed checkpoints, "
                                        "every seal, recording, composite and exhibit")
    user = sub.add_parser("user", help="add staff accounts, set their passwords, disable them "
                                       "(a password is typed at the prompt or piped on stdin)")
    users = user.add_subparsers(dest="user_command", required=True)
    add = users.add_parser("add", help="add a staff account")
    add.add_argument("login", help="what they sign in with: letters, digits, . _ -")
    add.add_argument("--name", required=True, help="their name, as the court writes it")
    add.add_argument("--role", required=True, action="append",
                     choices=[r.value for r in StaffRole],
                     help="a role; give --role again for several")
    add.add_argument("--court", default=None, help="their court, by id or exact name")
    passwd = users.add_parser("passwd", help="set an account's password (its sessions end)")
    passwd.add_argument("login")
    disable = users.add_parser("disable",
                               help="disable an account: it signs in no more and every "
                                    "session it has ends at once")
    disable.add_argument("login")
    users.add_parser("list", help="list the staff accounts")
    token = sub.add_parser("token", help="add, list and revoke integrations' API tokens")
    tokens = token.add_subparsers(dest="token_command", required=True)
    add_token = tokens.add_parser("add", help="add an API token; its secret is printed once")
    add_token.add_argument("name", help="who uses it, e.g. 案件管理系统")
    add_token.add_argument("--scope", required=True, action="append",
                           choices=[s.value for s in Scope],
                           help="what it may do; give --scope again for several")
    add_token.add_argument("--court", default=None,
                           help="only this court's hearings, by id or exact name")
    tokens.add_parser("list", help="list the API tokens (never their secrets)")
    revoke = tokens.add_parser("revoke", help="revoke an API token: its next request is "
                                              "refused")
    revoke.add_argument("token", help="the token's id, or the name of one not revoked")
    render = sub.add_parser("render", help="render a hearing's review composite (MP4)")
    render.add_argument("hearing", help="the hearing's id")
    again = sub.add_parser("retranscribe",
                           help="transcribe a hearing's recordings again, as a new version")
    again.add_argument("hearing", help="the hearing's id")
    again.add_argument("--model", default=None,
                       help="base, tiny.en or a CTranslate2 model directory "
                            "(default: the whisper_model setting)")
    again.add_argument("--beam-size", type=int, default=5, choices=range(1, 11),
                       metavar="N", help="beam size 1-10 (default 5: slower, more accurate)")
    add_loadtest_arguments(sub.add_parser(
        "loadtest", help="drive many signaling (and media) clients against a running server"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "loadtest":
        # A client of some server: this machine's settings are not its business.
        logging.basicConfig(level=logging.WARNING)
        return loadtest(args)
    try:
        settings = _settings(args)
    except SettingsError as e:
        print(f"tingshen: invalid setting {e}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        if args.worker:
            return asyncio.run(_serve(settings, False, worker=True))
        migrate(settings.database)
        if args.workers > 1:
            return _supervise(settings, args)
        return asyncio.run(_serve(settings, args.seed_demo))
    if args.command == "migrate":
        migrate(settings.database)
        print(f"database at head: {settings.database}")
        return 0
    if args.command == "seed-demo":
        migrate(settings.database)
        asyncio.run(_seed(settings))
        return 0
    if args.command == "user":
        migrate(settings.database)
        return asyncio.run(_user(settings, args))
    if args.command == "token":
        migrate(settings.database)
        return asyncio.run(_token(settings, args))
    if args.command == "verify-audit":
        return asyncio.run(_verify(settings))
    if args.command == "render":
        migrate(settings.database)
        return asyncio.run(_render(settings, args.hearing))
    if args.command == "retranscribe":
        migrate(settings.database)
        return asyncio.run(_retranscribe(settings, args.hearing, args.model or
                                         settings.whisper_model, args.beam_size))
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
