"""`tingshen` as people run it: a real process, a real port, real signals."""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from courtrooms.schemas import AuditQuery
from tests.servers import free_port

TINGSHEN = Path(sys.executable).parent / "tingshen"
START_TIMEOUT_S = 120
DEMO_TITLE = "张某某盗窃案 公开开庭审理（演示）"


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGSHEN_")}
    # `serve` creates the first administrator: the tests keep calling with the admin token.
    env.update({"TINGSHEN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
                "TINGSHEN_WHISPER_MODEL": "tiny.en", "TINGSHEN_KEEP_ADMIN_TOKEN": "true",
                **extra})
    return env


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def post_json(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def stop_server(proc: subprocess.Popen[str], within: float) -> None:
    """Stop a server left running by a test, as an operator would (SIGTERM), killing it if it
    has not stopped within `within` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_until(proc: subprocess.Popen[str], marker: str, count: int = 1) -> str:
    """Stdout up to and including the `count`th line starting with `marker`; fails on exit or
    timeout."""
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"no {marker!r} line in {START_TIMEOUT_S}s: {''.join(seen)}"
            ) from None
        if line is None:
            raise AssertionError(f"tingshen exited early ({proc.wait()}): {''.join(seen)}")
        seen.append(line)
        if line.startswith(marker):
            count -= 1
            if count == 0:
                return "".join(seen)


def test_serve_seed_demo_prints_working_links_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    proc = subprocess.Popen(
        [str(TINGSHEN), "serve", "--seed-demo", "--port", str(port)],
        env=clean_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out = read_until(proc, "API:")
        base = f"http://127.0.0.1:{port}"
        assert f"Tingshen listening on {base}" in out

        links = dict(re.findall(rf"^\s+(\w+)\s+\S+\s+({re.escape(base)}/join/\S+)$", out,
                                re.MULTILINE))
        assert set(links) == {"judge", "defendant", "lawyer"}, out
        assert len(set(links.values())) == 3
        device_key = re.search(r"device key: (\S+)  \(kiosk: (\S+)\)$", out, re.MULTILINE)
        clerk = re.search(r"^API token \(bearer, for integrations; (.*)\): (\S+)$", out,
                          re.MULTILINE)
        assert device_key and clerk, out
        token = clerk.group(2)
        assert "generated" in clerk.group(1)
        # Kept where it says, readable by the owner only.
        kept = data_dir / "admin_token"
        assert kept.read_text().strip() == token
        assert kept.stat().st_mode & 0o077 == 0

        status, page = http(links["lawyer"])
        assert status == 200, page
        staff = re.search(r"^Scheduling (\S+)\s+Live now (\S+)\s+Review (\S+)$", out,
                          re.MULTILINE)
        mine = re.search(r"^Judges and clerks: their hearings at (\S+) ", out, re.MULTILINE)
        assert staff and mine, out
        for url in (*staff.groups(), mine.group(1), device_key.group(2)):
            assert http(url)[0] == 200, url
        assert html.escape(DEMO_TITLE) in page and "李律师" in page

        status, text = http(f"{base}/api/v1/hearings",
                            {"Authorization": f"Bearer {token}"})
        assert status == 200, text
        hearings: dict[str, Any] = json.loads(text)
        assert hearings["total"] == 1 and hearings["items"][0]["title"] == DEMO_TITLE
        status, _ = http(f"{base}/api/v1/hearings", {"Authorization": f"Bearer {token}x"})
        assert status == 401

        # The first administrator, created at setup, and the demo's staff sign in with the
        # passwords printed; the admin token no longer opens a session.
        first = re.search(r"^Staff sign-in: login (\S+) password (\S+)  \(the first "
                          r"administrator", out, re.MULTILINE)
        staff = {role: (login, password) for role, login, password in re.findall(
            r"^\s+staff (\w+)\s+\S+\s+login (\S+)  password (\S+)", out, re.MULTILINE)}
        assert first and set(staff) == {"judge", "clerk", "supervisor"}, out
        for login, password in (first.groups(), *staff.values()):
            status, text = post_json(f"{base}/api/v1/session",
                                     {"login": login, "password": password})
            assert status == 201 and json.loads(text)["account"]["login"] == login, text
        status, text = post_json(f"{base}/api/v1/session", {"token": token})
        assert status == 403 and "token_sign_in_off" in text, text

        status, text = http(f"{base}/api/v1/terminal/assignment",
                            {"Authorization": f"Device {device_key.group(1)}"})
        assert status == 200, text
        assignment = json.loads(text)
        assert assignment["hearing"]["id"] == hearings["items"][0]["id"]
        assert assignment["participant"]["role"] == "defendant" and assignment["token"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_with_an_invalid_port_names_the_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(TINGSHEN), "serve"], env=clean_env(tmp_path / "var", TINGSHEN_PORT="notaport"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TINGSHEN_PORT" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "var" / "tingshen.db").exists()  # nothing was started or created


def start_server(data_dir: Path, port: int, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(TINGSHEN), "serve", "--port", str(port), *extra],
        env=clean_env(data_dir, TINGSHEN_ICE_HOST_ADDRESSES="127.0.0.1"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    return proc, read_until(proc, "API:")


async def record_then_kill(proc: subprocess.Popen[str], base: str, judge_token: str,
                           seconds: float) -> tuple[str, float]:
    """The judge opens and starts the hearing; the server is killed `seconds` later."""
    from tests.clients import HearingClient

    judge = HearingClient(base, "judge")
    try:
        await judge.join(judge_token)
        hearing_id = (await judge.next_message("welcome"))["hearing"]["id"]
        await judge.next_message("offer")
        for action, state in (("open", "open"), ("start", "in_session")):
            await judge.send({"type": "command", "action": action})
            await judge.wait_for(lambda s=state: judge.hearing_state == s)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        proc.send_signal(signal.SIGKILL)
        return hearing_id, time.monotonic() - started
    finally:
        await judge.close()


def post(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def test_a_killed_server_keeps_its_recording_and_recovers_it_at_start(tmp_path: Path) -> None:
    from tests.probe import codecs, duration, playable_seconds

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "var"
    proc, out = start_server(data_dir, port, "--seed-demo")
    judge_token = re.search(r"judge\s+\S+\s+\S+/join/(\S+)", out)
    admin_token = re.search(r"^API token \([^)]*\): (\S+)", out, re.MULTILINE)
    assert judge_token and admin_token, out
    admin = {"Authorization": f"Bearer {admin_token.group(1)}"}
    hearing_id, recorded = asyncio.run(record_then_kill(proc, base, judge_token.group(1), 6.0))
    proc.wait(10)

    files = list((data_dir / "recordings" / hearing_id).glob("*.webm"))
    assert len(files) == 1
    # Everything up to the last two seconds plays, straight from the killed server's file.
    assert playable_seconds(files[0]) >= recorded - 2.0
    captured = files[0].read_bytes()
    # A render the killed server was writing.
    (data_dir / "composites").mkdir(exist_ok=True)
    partial = data_dir / "composites" / f".{hearing_id}.mp4.0123abcd.partial"
    partial.write_bytes(b"half an mp4")

    proc, _ = start_server(data_dir, port)
    try:
        status, text = http(f"{base}/api/v1/hearings/{hearing_id}/recordings", admin)
        assert status == 200, text
        [item] = json.loads(text)["items"]
        assert item["status"] == "recovered" and item["error"] is None
        assert item["duration"] >= recorded - 2.0
        # Repaired beside the file as captured, which is kept byte for byte; both hashed.
        repaired = files[0].with_name(f"{files[0].stem}.repaired.webm")
        assert files[0].read_bytes() == captured
        assert item["captured_sha256"] == hashlib.sha256(captured).hexdigest()
        assert item["captured_size"] == len(captured)
        assert item["sha256"] == hashlib.sha256(repaired.read_bytes()).hexdigest()
        assert codecs(repaired) == ["opus", "vp8"]
        assert abs(duration(repaired) - item["duration"]) < 0.1
        assert item["size"] == repaired.stat().st_size
        status, text = http(f"{base}/api/v1/audit?hearing_id={hearing_id}&limit=200", admin)
        actions = [e["action"] for e in json.loads(text)["items"]]
        assert "recording.recovered" in actions
        # The hearing is not left in session: interrupted, in recess, for the court to decide.
        assert "hearing.interrupted" in actions
        status, text = http(f"{base}/api/v1/hearings/{hearing_id}", admin)
        hearing = json.loads(text)
        assert hearing["state"] == "recess" and hearing["interrupted_at"] is not None
        assert not partial.exists()

        status, text = post(f"{base}/api/v1/hearings/{hearing_id}/close", admin)
        assert status == 200, text
        deadline = time.monotonic() + 120
        while True:
            status, text = http(f"{base}/api/v1/hearings/{hearing_id}/composite", admin)
            composite = json.loads(text)
            if composite["state"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert composite == {"state": "done", "progress": 1.0, "error": None}
        status, text = http(f"{base}/api/v1/hearings/{hearing_id}/recordings", admin)
        [mp4] = [i for i in json.loads(text)["items"] if i["kind"] == "composite"]
        assert mp4["media_type"] == "video/mp4" and mp4["codecs"] == "h264,aac"
        status, text = http(f"{base}/api/v1/hearings/{hearing_id}", admin)
        assert json.loads(text)["interrupted_at"] is None  # the court decided: closed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    env = clean_env(data_dir)
    verified = subprocess.run([str(TINGSHEN), "verify-audit"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr
    assert "sealed recordings match" in verified.stdout
    rendered = subprocess.run([str(TINGSHEN), "render", hearing_id], env=env,
                              capture_output=True, text=True, timeout=300)
    assert rendered.returncode == 0, rendered.stderr
    assert "100%" in rendered.stderr and "composite written" in rendered.stdout
    with files[0].open("r+b") as f:
        f.seek(100)
        f.write(b"tampered")
    verified = subprocess.run([str(TINGSHEN), "verify-audit"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 1
    assert files[0].name in verified.stderr and "altered" in verified.stderr


def test_a_missing_speech_model_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    result = subprocess.run(
        [str(TINGSHEN), "serve", "--port", str(free_port())],
        env=clean_env(tmp_path / "var", TINGSHEN_WHISPER_MODEL=str(empty)),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr and "model.bin" in result.stderr
    assert "Traceback" not in result.stderr


async def hold_hearing(base: str, admin: dict[str, str], tokens: dict[str, str],
                       seconds: float) -> str:
    """Judge and lawyer join and the judge starts the hearing; after `seconds` the lawyer
    hangs up and the hearing is closed through the API at once (as a clerk would)."""
    from tests.clients import HearingClient

    judge, lawyer = HearingClient(base, "judge"), HearingClient(base, "lawyer")
    try:
        await judge.join(tokens["judge"])
        hearing_id = str((await judge.next_message("welcome"))["hearing"]["id"])
        await judge.next_message("offer")
        await lawyer.join(tokens["lawyer"])
        lawyer_id = (await lawyer.next_message("welcome"))["participant"]["participant_id"]
        await judge.send({"type": "command", "action": "admit", "participant_id": lawyer_id})
        await lawyer.next_message("admitted")
        for action, state in (("open", "open"), ("start", "in_session")):
            await judge.send({"type": "command", "action": action})
            await judge.wait_for(lambda s=state: judge.hearing_state == s)
        await judge.wait_for(lambda: judge.frames_from(lawyer_id, "video") > 5, 30)
        await asyncio.sleep(seconds)
        await asyncio.gather(
            lawyer.close(),
            asyncio.to_thread(post, f"{base}/api/v1/hearings/{hearing_id}/close", admin))
        await judge.wait_for(lambda: judge.closed_code is not None, 30)
        return hearing_id
    finally:
        await judge.close()
        await lawyer.close()


def test_a_closed_hearing_verifies_and_a_rewritten_chain_does_not(tmp_path: Path) -> None:
    """An ordinary two-person hearing closed through the API verifies on untouched data,
    its seals signed by the key the server created at its first start; rewriting an event
    and every later hash is then found through the checkpoints outside the database."""
    from tests.courtrooms.test_audit import rechain

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "var"
    proc, out = start_server(data_dir, port, "--seed-demo")
    tokens = dict(re.findall(r"^\s+(judge|lawyer)\s+\S+\s+\S+/join/(\S+)$", out, re.MULTILINE))
    admin_token = re.search(r"^API token \([^)]*\): (\S+)", out, re.MULTILINE)
    assert set(tokens) == {"judge", "lawyer"} and admin_token, out
    admin = {"Authorization": f"Bearer {admin_token.group(1)}"}
    try:
        key = data_dir / "audit-signing-key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        hearing_id = asyncio.run(hold_hearing(base, admin, tokens, 3.0))
        deadline = time.monotonic() + 60
        while True:
            _, text = http(f"{base}/api/v1/audit?hearing_id={hearing_id}&limit=200", admin)
            actions = [e["action"] for e in json.loads(text)["items"]]
            if {"recording.sealed", "transcript.sealed"} <= set(actions):
                break
            assert time.monotonic() < deadline, actions
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert actions.count("recording.sealed") == 1, actions

    env = clean_env(data_dir)
    verified = subprocess.run([str(TINGSHEN), "verify-audit"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr
    assert re.search(r"\d+ checkpoints and 2 seals signed", verified.stdout), verified.stdout
    assert (data_dir / "audit-checkpoints.jsonl").stat().st_size > 0

    async def rewrite() -> None:
        from courtrooms.database import Database
        from courtrooms.registry import Registry

        db = Database(f"sqlite+aiosqlite:///{data_dir / 'tingshen.db'}")
        try:
            registry = Registry(db)
            events, _ = await registry.audit_events(AuditQuery(limit=50))
            target = next(e for e in events if e.action == "participant.added")
            await rechain(registry, target.seq, {**target.data, "name": "Someone Else"})
            assert (await registry.verify_audit()).ok  # the chain alone no longer tells
        finally:
            await db.aclose()

    asyncio.run(rewrite())
    verified = subprocess.run([str(TINGSHEN), "verify-audit"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 1, verified.stdout
    assert "the chain was rewritten" in verified.stderr
    assert "Beijing time]" in verified.stderr
    assert "intact" not in verified.stdout


def test_a_staff_token_from_the_environment_is_never_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from config import load_settings
    from web.cli import print_staff_links

    secret = "operator-chosen-token-0123456789"
    print_staff_links(load_settings(environ={}, data_dir=tmp_path, admin_token=secret,
                                    keep_admin_token=True),
                      secret, generated=False)
    out = capsys.readouterr().out
    assert secret not in out and "TINGSHEN_ADMIN_TOKEN" in out
    # A generated one is shown once, with where it is kept.
    print_staff_links(load_settings(environ={}, data_dir=tmp_path, keep_admin_token=True),
                      "generated-0123456789", generated=True)
    assert "generated-0123456789" in capsys.readouterr().out
    # By default it is off once an administrator exists (serve has made one): not shown, and
    # integrations are told where their tokens come from.
    print_staff_links(load_settings(environ={}, data_dir=tmp_path), "generated-0123456789",
                      generated=True)
    out = capsys.readouterr().out
    assert "generated-0123456789" not in out and "tingshen token add" in out


def test_a_signing_key_that_cannot_be_read_stops_start_up_with_one_clear_line(
        tmp_path: Path) -> None:
    junk = tmp_path / "keys" / "audit.pem"
    junk.parent.mkdir()
    junk.write_text("not a key\n")
    result = subprocess.run(
        [str(TINGSHEN), "serve", "--port", str(free_port())],
        env=clean_env(tmp_path / "var", TINGSHEN_SIGNING_KEY_PATH=str(junk)),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result
    assert "cannot start" in result.stderr and f"{junk} is not a PEM private key" in result.stderr
    assert "Traceback" not in result.stderr
    assert junk.read_text() == "not a key\n"  # never replaced: it may be the court's key


# -- staff accounts: tingshen user ... (issue 19) -----------------------------------------------

class Terminal(io.StringIO):
    """stdin as a person at a terminal: the password is typed at getpass's prompt."""

    def isatty(self) -> bool:
        return True


def test_user_add_passwd_and_disable_read_passwords_never_from_argv(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from courtrooms.accounts import StaffAccounts
    from courtrooms.database import Database
    from courtrooms.errors import SignInRefused
    from web.cli import main

    monkeypatch.setenv("TINGSHEN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TINGSHEN_DATABASE_URL", database_url)

    def run(*argv: str, stdin: str = "", typed: list[str] | None = None) -> tuple[int, str]:
        if typed is not None:
            answers = iter(typed)
            monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
            monkeypatch.setattr("sys.stdin", Terminal(""))
        else:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out + out.err

    court = "上海市第一中级人民法院"
    password = "审判员的密码 0123"
    # Piped on stdin (a script), the first line is the password.
    code, out = run("user", "add", "wang.fang", "--name", "王芳", "--role", "judge",
                    "--role", "supervisor", stdin=f"{password}\nignored\n")
    assert code == 0 and "wang.fang added: 王芳, judge, supervisor" in out, out
    assert password not in out
    for argv, stdin, problem in (
        (("add", "WANG.FANG", "--name", "又一个", "--role", "clerk"), password,
         "exists already"),
        (("add", "li.ming", "--name", "李明", "--role", "clerk"), "short", "10 to 256"),
        (("add", "li.ming", "--name", "李明", "--role", "clerk"), "", "no password on stdin"),
        (("add", "li.ming", "--name", "李明", "--role", "clerk", "--court", court), password,
         "does not exist"),
        (("add", "李明", "--name", "李明", "--role", "clerk"), password, "login"),
        (("passwd", "nobody"), password, "does not exist"),
    ):
        code, out = run("user", *argv, stdin=stdin)
        assert code != 0 and problem in out and "Traceback" not in out, (argv, out)
    with pytest.raises(SystemExit):
        run("user", "add", "li.ming", "--name", "李明", "--role", "bailiff", stdin=password)

    # At a terminal: typed twice, and the two must agree.
    code, out = run("user", "passwd", "wang.fang", typed=["新的密码 456789", "新的密码 456780"])
    assert code == 1 and "differ" in out
    code, out = run("user", "passwd", "wang.fang", typed=["新的密码 456789"] * 2)
    assert code == 0 and "password of wang.fang changed" in out, out

    async def check(login: str, given: str) -> bool:
        db = Database(database_url)
        try:
            await StaffAccounts(db).authenticate(login, given)
            return True
        except SignInRefused:
            return False
        finally:
            await db.aclose()

    assert asyncio.run(check("wang.fang", "新的密码 456789"))
    assert not asyncio.run(check("wang.fang", password))
    code, out = run("user", "disable", "wang.fang")
    assert code == 0 and "wang.fang disabled" in out
    assert not asyncio.run(check("wang.fang", "新的密码 456789"))
    code, out = run("user", "list")
    assert code == 0 and re.search(r"^wang\.fang\s+王芳\s+judge,supervisor\s+disabled$", out,
                                   re.MULTILINE), out


def test_token_add_list_and_revoke(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from courtrooms.database import Database
    from courtrooms.registry import Registry
    from courtrooms.tokens import ApiTokens
    from web.cli import main

    monkeypatch.setenv("TINGSHEN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TINGSHEN_DATABASE_URL", database_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("token", "add", "案件管理系统", "--scope", "read_records",
                       "--scope", "schedule")
    assert code == 0 and "API token 案件管理系统" in out and "schedule, read_records" in out, out
    secret = out.strip().splitlines()[-1]  # the secret alone on the last line, shown once
    assert secret.startswith("tsk_")

    async def holder() -> object:
        db = Database(database_url)
        try:
            return await ApiTokens(db).find(secret)
        finally:
            await db.aclose()

    assert asyncio.run(holder()) is not None
    code, out, _ = run("token", "list")
    assert code == 0 and secret not in out
    assert re.search(r"案件管理系统\s+schedule,read_records\s+last used 20\d\d-\d\d-\d\d "
                     r"\d\d:\d\d Beijing time; active$", out, re.MULTILINE), out
    for argv, problem in ((("add", "x", "--scope", "schedule", "--court", "没有的法院"),
                           "does not exist"),
                          (("add", "案件管理系统", "--scope", "schedule"), "exists already"),
                          (("add", " ", "--scope", "schedule"), "name"),
                          (("revoke", "没有的令牌"), "does not exist")):
        code, out, err = run("token", *argv)
        assert code != 0 and problem in err and "Traceback" not in err, (argv, err)
    with pytest.raises(SystemExit):
        run("token", "add", "x", "--scope", "seal")
    code, out, _ = run("token", "revoke", "案件管理系统")
    assert code == 0 and "revoked" in out
    assert asyncio.run(holder()) is None
    code, out, _ = run("token", "list")
    assert re.search(r"案件管理系统 .* revoked 20\d\d-\d\d-\d\d \d\d:\d\d Beijing time$", out,
                     re.MULTILINE), out

    async def audited() -> list[tuple[str, str]]:
        db = Database(database_url)
        try:
            events, _ = await Registry(db).audit_events(AuditQuery(limit=50))
            return [(e.action, e.actor) for e in events if e.action.startswith("api_token.")]
        finally:
            await db.aclose()

    assert asyncio.run(audited()) == [("api_token.created", "system:cli"),
                                      ("api_token.revoked", "system:cli")]
