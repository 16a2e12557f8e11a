"""Network faults for tests: a network namespace joined to this one by a veth pair, and
impairments (loss, delay, jitter, a blackout) on either direction of that link.

The kernel this runs on may have no netem qdisc (`sch_netem` is often left out of VM
kernels), so netem is done in user space: an iptables NFQUEUE rule in the namespace hands each
packet of an impaired direction to a small process there (`python -m tests.faults netem`,
below) that drops it at random or releases it after its delay. Dropping by verdict, rather
than with an iptables DROP, keeps a loss silent for the sender, as on a real network (a DROP
in OUTPUT fails the sender's `sendto` with EPERM). Rules exist only while an impairment is on:
a clear link is the kernel's own.

`python -m tests.faults clean` removes namespaces left by a test run that was killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import heapq
import ipaddress
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PREFIX = "tsf"  # names of namespaces and interfaces this module makes: tsf<pid>x<n>
POOL = ipaddress.ip_network("10.77.0.0/16")
UPLINK, DOWNLINK = "uplink", "downlink"  # from the namespace / into the namespace
CHAINS = {UPLINK: "TSF_UP", DOWNLINK: "TSF_DOWN"}
# NFQUEUE numbers (per namespace): two a direction, so that a new impairment takes over from
# the one before without a moment of clean link between them.
QUEUES = {UPLINK: (1, 2), DOWNLINK: (3, 4)}
ROOT = Path(__file__).resolve().parent.parent  # where `python -m tests.faults` runs


@dataclass(frozen=True)
class Impairment:
    """What netem would be told: `loss 15% delay 100ms 10ms`."""

    loss_pct: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.loss_pct <= 100.0):
            raise ValueError(f"loss_pct must be 0-100, not {self.loss_pct}")
        if self.delay_ms < 0 or not (0.0 <= self.jitter_ms <= self.delay_ms):
            raise ValueError("delay_ms must be >= 0 and jitter_ms within 0..delay_ms")


BLACKOUT = Impairment(loss_pct=100.0)


def network_faults_unavailable() -> str | None:
    """Why these tests cannot run here (not root, no network namespaces), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}probe{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    except OSError as e:
        return f"`ip` (iproute2) cannot run: {e}"
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*argv: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise RuntimeError(f"{e.filename} is not installed (`make test` installs iptables)"
                           ) from e
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _mac(argv: list[str]) -> str:
    shown = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    return shown[shown.index("link/ether") + 1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale() -> list[str]:
    """Delete namespaces (and with them their veth pairs) of test runs that died."""
    removed = []
    listed = subprocess.run(["ip", "-o", "netns", "list"], capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX) or "x" not in name:
            continue
        pid = name[len(PREFIX):].split("x")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            removed.append(name)
    return removed


def _used_networks() -> set[ipaddress.IPv4Network]:
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    used = set()
    for line in shown.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.add(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return used


class NetworkNamespace:
    """A namespace `name` with `address` on its end of a veth pair; `root_address` is the
    other end, in this process's namespace."""

    _made = 0

    def __init__(self) -> None:
        NetworkNamespace._made += 1
        tag = f"{os.getpid()}x{NetworkNamespace._made}"
        self.name = f"{PREFIX}{tag}"
        self.root_if = f"{PREFIX}{tag}r"[:15]
        self.ns_if = f"{PREFIX}{tag}n"[:15]
        used = _used_networks()
        subnets = list(POOL.subnets(new_prefix=30))
        random.shuffle(subnets)
        self.network = next(n for n in subnets if not any(n.overlaps(u) for u in used))
        hosts = list(self.network.hosts())
        self.root_address, self.address = str(hosts[0]), str(hosts[1])
        self._netems: dict[str, tuple[int, asyncio.subprocess.Process]] = {}

    def create(self) -> None:
        prefix = self.network.prefixlen
        _run("ip", "netns", "add", self.name)
        try:
            # No IPv6 on the link: its link-local addresses finish duplicate detection a second
            # or two after the link comes up, and Chromium, told of an address change, fails
            # every request then in flight (ERR_NETWORK_CHANGED: a page whose scripts never
            # ran, one time in eight).
            _run(*self.exec_args("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                                 "net.ipv6.conf.default.disable_ipv6=1"))
            _run("ip", "link", "add", self.root_if, "type", "veth", "peer", "name", self.ns_if,
                 "netns", self.name)
            _run("sysctl", "-q", "-w", f"net.ipv6.conf.{self.root_if}.disable_ipv6=1")
            _run(*self.exec_args("sysctl", "-q", "-w",
                                 f"net.ipv6.conf.{self.ns_if}.disable_ipv6=1"))
            _run("ip", "addr", "add", f"{self.root_address}/{prefix}", "dev", self.root_if)
            _run("ip", "link", "set", self.root_if, "up")
            _run(*self.exec_args("ip", "addr", "add", f"{self.address}/{prefix}",
                                 "dev", self.ns_if))
            _run(*self.exec_args("ip", "link", "set", self.ns_if, "up"))
            _run(*self.exec_args("ip", "link", "set", "lo", "up"))
            # Fixed neighbours: a bottleneck on the link (limit_rate) would otherwise drop the
            # ARP replies in its queue, and the other direction would die with them (no real
            # access link puts ARP behind its bottleneck).
            root_mac = _mac(["ip", "link", "show", self.root_if])
            ns_mac = _mac(self.exec_args("ip", "link", "show", self.ns_if))
            _run("ip", "neigh", "replace", self.address, "lladdr", ns_mac, "dev", self.root_if,
                 "nud", "permanent")
            _run(*self.exec_args("ip", "neigh", "replace", self.root_address, "lladdr",
                                 root_mac, "dev", self.ns_if, "nud", "permanent"))
            for direction, chain in CHAINS.items():
                hook, flag = ("OUTPUT", "-o") if direction == UPLINK else ("INPUT", "-i")
                _run(*self.exec_args("iptables", "-N", chain))
                _run(*self.exec_args("iptables", "-A", hook, flag, self.ns_if, "-j", chain))
        except Exception:
            self.delete()
            raise

    def delete(self) -> None:
        """Remove the namespace and the veth pair (checked: a leftover would take the
        addresses of a later test)."""
        for _ in range(20):
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            subprocess.run(["ip", "link", "del", self.root_if], capture_output=True)
            listed = subprocess.run(["ip", "-o", "netns", "list"], capture_output=True,
                                    text=True).stdout.split()
            linked = subprocess.run(["ip", "link", "show", self.root_if], capture_output=True)
            if self.name not in listed and linked.returncode != 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"network namespace {self.name} could not be removed")

    def exec_args(self, *argv: str) -> list[str]:
        """A command line that runs `argv` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    async def _iptables(self, *argv: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.exec_args("iptables", *argv),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"iptables {' '.join(argv)}: {err.decode().strip()}")

    async def impair(self, impairment: Impairment, direction: str = "both") -> None:
        """Impose `impairment` on packets leaving the namespace (uplink), entering it
        (downlink), or both; replaces what was imposed there before."""
        for d in (UPLINK, DOWNLINK) if direction == "both" else (direction,):
            previous = self._netems.get(d)
            queue = next(q for q in QUEUES[d] if previous is None or q != previous[0])
            process = await self._start_netem(queue, impairment)
            self._netems[d] = (queue, process)
            # No --queue-bypass: if the netem process died, packets stop (loudly) rather
            # than flow unimpaired (silently). -R swaps the rule in one step.
            rule = ["-j", "NFQUEUE", "--queue-num", str(queue)]
            if previous is None:
                await self._iptables("-A", CHAINS[d], *rule)
            else:
                await self._iptables("-R", CHAINS[d], "1", *rule)
                await _stop(previous[1])

    async def limit_rate(self, kbit: int, direction: str = DOWNLINK) -> None:
        """A bottleneck of `kbit` kbit/s (tc tbf: a token bucket with a queue of about
        250 ms, dropping what does not fit, as a home router's or a prison link's would)."""
        argv = ["tc", "qdisc", "replace", "dev", self.root_if if direction == DOWNLINK
                else self.ns_if, "root", "tbf", "rate", f"{kbit}kbit", "burst", "12kb",
                "latency", "250ms"]
        await self._tc(argv, direction)

    async def unlimit_rate(self, direction: str = DOWNLINK) -> None:
        argv = ["tc", "qdisc", "del", "dev", self.root_if if direction == DOWNLINK
                else self.ns_if, "root"]
        await self._tc(argv, direction)

    async def _tc(self, argv: list[str], direction: str) -> None:
        command = argv if direction == DOWNLINK else self.exec_args(*argv)
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {err.decode().strip()}")

    async def clear(self, direction: str = "both") -> None:
        """Back to a clean link: rules first, then the netem process lets go of what it
        holds."""
        for d in (UPLINK, DOWNLINK) if direction == "both" else (direction,):
            await self._iptables("-F", CHAINS[d])
            previous = self._netems.pop(d, None)
            if previous is not None:
                await _stop(previous[1])

    async def _start_netem(self, queue: int, impairment: Impairment
                           ) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *self.exec_args(sys.executable, "-m", "tests.faults", "netem",
                            "--queue", str(queue),
                            "--loss-pct", str(impairment.loss_pct),
                            "--delay-ms", str(impairment.delay_ms),
                            "--jitter-ms", str(impairment.jitter_ms)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), 10.0)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await _stop(process)
            raise RuntimeError(f"netem on queue {queue} did not start: {line!r}")
        return process

    async def aclose(self) -> None:
        for direction in list(self._netems):
            await _stop(self._netems.pop(direction)[1])


async def _stop(process: asyncio.subprocess.Process, grace_s: float = 5.0) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def network_namespace() -> AsyncIterator[NetworkNamespace]:
    """A fresh namespace with a veth link to this one, deleted afterwards even on failure; the
    test is skipped (saying why) where namespaces cannot be made. iptables must be installed
    (`make test` installs it)."""
    reason = network_faults_unavailable()
    if reason is not None:
        pytest.skip(reason)
    clean_stale()
    namespace = NetworkNamespace()
    namespace.create()
    try:
        yield namespace
    finally:
        try:
            await namespace.aclose()
        finally:
            namespace.delete()


# -- netem in user space: NFQUEUE over raw netlink (no library needed) -----------------------

NETLINK_NETFILTER = 12
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLA_TYPE_MASK = 0x3FFF  # an attribute's type without the NLA_F_* flags
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1  # the packet's id only: its payload is never read
NF_DROP, NF_ACCEPT = 0, 1
QUEUE_MAXLEN = 8192
RECEIVE_BUFFER = 8 * 1024 * 1024


def _attribute(kind: int, data: bytes) -> bytes:
    body = struct.pack("=HH", 4 + len(data), kind) + data
    return body + b"\0" * (-len(body) % 4)


def _message(kind: int, flags: int, queue: int, attributes: bytes) -> bytes:
    payload = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + attributes
    header = struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | kind, flags,
                         0, 0)
    return header + payload


def _packet_ids(data: bytes) -> Iterator[int]:
    """The ids of the queued packets a netlink read holds."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20  # past nlmsghdr and nfgenmsg
            while at + 4 <= offset + length:
                size, attribute = struct.unpack_from("=HH", data, at)
                if attribute & NLA_TYPE_MASK == NFQA_PACKET_HDR:
                    yield struct.unpack_from("!I", data, at + 4)[0]
                    break
                at += (size + 3) & ~3
        offset += (length + 3) & ~3


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def netem(queue: int, impairment: Impairment) -> None:
    """Drop `loss_pct` % of NFQUEUE `queue`'s packets at random and hold the others for
    `delay_ms` ± `jitter_ms` (uniform), in order (netem with jitter reorders; ordered
    delivery keeps RTP's loss counters about loss). Runs until SIGTERM or stdin closes."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.bind((0, 0))
    for attributes in (
        _attribute(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)),
        _attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
        + _attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)),
    ):
        sock.send(_message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, queue, attributes))
        reply = sock.recv(65536)
        if struct.unpack_from("=H", reply, 4)[0] == NLMSG_ERROR:
            code = -struct.unpack_from("=i", reply, 16)[0]
            if code:
                raise OSError(code, f"NFQUEUE {queue}: {os.strerror(code)}")
    signal.signal(signal.SIGTERM, _raise_stop)
    print("ready", flush=True)
    loss = impairment.loss_pct / 100
    delay_s, jitter_s = impairment.delay_ms / 1000, impairment.jitter_ms / 1000
    held: list[tuple[float, int]] = []
    last_due = 0.0
    overflows = 0

    def verdict(packet_id: int, accept: bool) -> None:
        sock.send(_message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, queue, _attribute(
            NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet_id))))

    try:
        while True:
            now = time.monotonic()
            while held and held[0][0] <= now:
                verdict(heapq.heappop(held)[1], True)
            timeout = max(0.0, held[0][0] - now) if held else None
            readable, _, _ = select.select([sock, sys.stdin], [], [], timeout)
            if sys.stdin in readable and not sys.stdin.buffer.read1(4096):
                return  # the test that started us is gone
            if sock not in readable:
                continue
            try:
                data = sock.recv(1 << 20)
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                # We fell behind and the kernel dropped packets: a loss, as on a congested
                # link; say so, for whoever reads the figures.
                overflows += 1
                continue
            arrived = time.monotonic()
            for packet_id in _packet_ids(data):
                if random.random() < loss:
                    verdict(packet_id, False)
                    continue
                spread = random.uniform(-jitter_s, jitter_s) if jitter_s else 0.0
                last_due = max(arrived + delay_s + spread, last_due)
                heapq.heappush(held, (last_due, packet_id))
    except _Stop:
        pass
    finally:
        # Let go of what is held: the kernel drops a queue's packets when its reader leaves.
        for _, packet_id in sorted(held):
            with contextlib.suppress(OSError):
                verdict(packet_id, True)
        sock.close()
        if overflows:
            print(f"netem on queue {queue}: the kernel dropped packets {overflows} time(s) "
                  "because this process fell behind", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults")
    commands = parser.add_subparsers(dest="command", required=True)
    impair = commands.add_parser("netem", help="impair an NFQUEUE's packets (in a namespace; "
                                 "stops when stdin closes)")
    impair.add_argument("--queue", type=int, required=True)
    impair.add_argument("--loss-pct", type=float, default=0.0)
    impair.add_argument("--delay-ms", type=float, default=0.0)
    impair.add_argument("--jitter-ms", type=float, default=0.0)
    commands.add_parser("clean", help="remove namespaces of test runs that died")
    args = parser.parse_args()
    if args.command == "netem":
        netem(args.queue, Impairment(args.loss_pct, args.delay_ms, args.jitter_ms))
    else:
        for name in clean_stale():
            print(f"removed {name}")


if __name__ == "__main__":
    main()
