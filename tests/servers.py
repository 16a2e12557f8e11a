"""Real servers the tests start on loopback: PostgreSQL (and later Redis)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bindir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: run `make test`, which installs it")


@dataclass
class PostgresServer:
    """A throwaway cluster in `root`, trusting local connections, listening on 127.0.0.1."""

    root: Path
    port: int
    process_user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            [str(_pg_bindir() / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-qc", sql],
            check=True, capture_output=True,
        )

    @classmethod
    def start(cls, root: Path) -> PostgresServer:
        bindir = _pg_bindir()
        data = root / "data"
        root.mkdir(parents=True, exist_ok=True)
        # PostgreSQL refuses to run as root; as root, run it as the postgres system user.
        user = "postgres" if os.geteuid() == 0 else None
        prefix = ["runuser", "-u", user, "--"] if user else []
        if user:
            shutil.chown(root, user)
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True,
        )
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off " \
                  "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
             "-l", str(root / "server.log"), "-w", "-t", "60", "start"],
            check=True, capture_output=True,
        )
        server = cls(root, port, user)
        deadline = time.monotonic() + 30
        while True:
            try:
                server.psql("SELECT 1")
                return server
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        prefix = ["runuser", "-u", self.process_user, "--"] if self.process_user else []
        subprocess.run(
            [*prefix, str(_pg_bindir() / "pg_ctl"), "-D", str(self.root / "data"),
             "-m", "immediate", "stop"],
            check=False, capture_output=True,
        )


@dataclass
class RedisServer:
    """A throwaway redis-server on 127.0.0.1, without persistence: a restart comes back empty,
    the worst case the cluster must survive."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, root: Path, port: int | None = None) -> RedisServer:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        root.mkdir(parents=True, exist_ok=True)
        server = cls(root, port or free_port())
        server.run()
        return server

    def run(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--logfile",
             str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start; see {self.root / 'redis.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        """Kill the server (its data is gone) and start it again on the same port."""
        self.stop()
        time.sleep(down_s)
        self.run()
