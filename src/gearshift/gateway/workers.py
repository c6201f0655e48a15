"""`gearshift serve --workers N`: N listening sockets on one port, N gateway processes, one supervisor.

The supervisor binds the port (so a port in use fails at once), then starts N workers, each a
`gearshift serve --worker-fd FD` process that inherits one socket and runs its own event loop. On Linux each
worker has its own socket on the port (`SO_REUSEPORT`) and the kernel spreads new connections over them by
their address hash. With one shared socket, whichever worker wakes first accepts everything queued: 32
connections a client pool opens at once all landed on one worker, and kept-alive they stay there while the
other worker idles. The supervisor keeps every socket open, so connections that arrive for a worker being
replaced wait in its queue for the new one instead of being refused. Elsewhere (no `SO_REUSEPORT` load
balancing) the workers share one socket. The supervisor serves no traffic: it forwards signals and replaces
a worker that dies.

* SIGTERM / SIGINT: every worker drains (stops accepting, finishes in-flight responses up to
  `[limits] drain_timeout_s`, flushes its decision writer), then the supervisor exits 0.
* SIGHUP: every worker reloads its router from the version registry (as one `gearshift serve` does).
* A worker that exits on its own is restarted; one that keeps dying at start stops the whole gateway.

Each worker is a whole gateway with its own memory. What that means for state (see docs/scale-out.md):
with `[redis] url` breakers, rate limits, budgets, conversation pins and strong-share windows are shared;
without it they are per worker, so `per_worker_settings` gives each worker 1/N of every per-key `rpm`
and daily budget and of the shadow judge's hourly caps (the sum never exceeds the configured cap).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from gearshift.errors import ConfigError
from gearshift.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

#: a worker dying sooner than this after its start counts as a crash loop
_EARLY_EXIT_S = 5.0
#: that many early deaths of one worker slot in a row stop the gateway (bad config, port, code)
_MAX_EARLY_EXITS = 3
_POLL_S = 0.1
#: connections a listening socket queues before its worker accepts them
BACKLOG = 2048


def spool_for_worker(settings: GatewaySettings, index: int) -> Path:
    """Each worker's own disk spool (two processes must never append to and replay one file)."""
    st = settings.store
    base = st.spool_path if st.spool_path is not None else st.path.with_name(st.path.name + ".spool.jsonl")
    return base.with_name(f"{base.stem}.w{index}{base.suffix}")


def per_worker_settings(settings: GatewaySettings, index: int, count: int) -> GatewaySettings:
    """What worker `index` of `count` runs with: its own spool; without `[redis] url`, its share of the caps
    that would otherwise multiply by N (per-key rpm and daily budget); the shadow judge's hourly caps always
    (they live in each process's memory even with Redis)."""
    if count <= 1:
        return settings
    store = settings.store.model_copy(update={"spool_path": spool_for_worker(settings, index)})
    sh = settings.shadow
    shadow = sh.model_copy(update={
        "max_requests_per_hour": None if sh.max_requests_per_hour is None else sh.max_requests_per_hour // count,
        "max_usd_per_hour": None if sh.max_usd_per_hour is None else sh.max_usd_per_hour / count,
    })
    auth = settings.auth
    if settings.redis.url is None:
        keys = [k.model_copy(update={
            "rpm": None if k.rpm is None else max(1, k.rpm // count),
            "budget_usd_per_day": None if k.budget_usd_per_day is None else k.budget_usd_per_day / count,
        }) for k in auth.keys]
        auth = auth.model_copy(update={"keys": keys})
    return settings.model_copy(update={"store": store, "shadow": shadow, "auth": auth})


def per_worker_note(settings: GatewaySettings, count: int) -> str | None:
    """What an operator should know when N workers run without Redis (printed once by the supervisor)."""
    if count <= 1 or settings.redis.url is not None:
        return None
    split = [k.id for k in settings.auth.keys if k.rpm is not None or k.budget_usd_per_day is not None]
    note = (f"  workers: {count} without [redis] url: breakers, conversation pins and strong-share windows are "
            "per worker (a follow-up turn may land on a worker that has no pin for its conversation)")
    if split:
        note += f"; each worker enforces 1/{count} of the rpm and daily budget of key(s) {', '.join(split)}"
    return note + ". Set [redis] url to share them."


def balanced_ports() -> bool:
    """Whether the kernel balances connections over sockets sharing a port (`SO_REUSEPORT` on Linux; the BSDs'
    and macOS's hand every connection to one of them)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listen_sockets(first: socket.socket, count: int) -> list[socket.socket]:
    """`first` (bound and listening with `SO_REUSEPORT` set) and `count - 1` more sockets on its address, one per
    worker; only `[first]` when the kernel would not balance between them."""
    socks = [first]
    if count <= 1 or not balanced_ports():
        return socks
    try:
        for _ in range(count - 1):
            sock = socket.socket(first.family, first.type, first.proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(first.getsockname())
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in socks[1:]:
            sock.close()
        raise ConfigError(f"cannot open a listening socket per worker on {first.getsockname()}: {exc.strerror}"
                          ) from None
    return socks


def worker_socket(fd: int) -> socket.socket:
    """The listening socket a worker inherited from its supervisor."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(f"--worker-fd {fd}: not an open socket ({exc.strerror}); it is set by "
                          "`gearshift serve --workers N`, not by hand") from None
    if sock.type != socket.SOCK_STREAM:
        raise ConfigError(f"--worker-fd {fd}: not a stream socket")
    return sock


def die_with_parent() -> None:
    """Linux: a worker gets SIGTERM (and drains) if its supervisor is killed outright, instead of holding the
    port as an orphan; elsewhere a no-op. (Not `getppid() == 1` checks: in a container the supervisor may be
    PID 1 itself.)"""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    early_exits: int = 0
    restarts: int = 0


@dataclass
class Supervisor:
    """Runs `count` workers on `socks` (one each, or one shared when there is only one): `command` is the worker's
    argv without the `--worker-*` options."""

    socks: Sequence[socket.socket]
    command: Sequence[str]
    count: int
    drain_timeout_s: float
    slots: list[_Slot] = field(default_factory=list)
    _stopping: bool = False
    _hup: bool = False

    def _spawn(self, slot: _Slot) -> None:
        fd = self.socks[slot.index % len(self.socks)].fileno()  # a replacement gets the dead worker's queue
        argv = [*self.command, "--worker-fd", str(fd), "--worker-index", str(slot.index),
                "--worker-count", str(self.count)]
        # its own process group: a terminal's Ctrl-C reaches the supervisor only, which stops each worker once
        # (uvicorn reads a second signal as "exit now, skip the drain")
        slot.proc = subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL, process_group=0)
        slot.started = time.monotonic()

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._hup = True

    def _signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    def run(self) -> int:
        """Start the workers and supervise them until SIGTERM/SIGINT; the exit code of the gateway."""
        old = {s: signal.signal(s, self._on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        try:
            self.slots = [_Slot(i) for i in range(self.count)]
            for slot in self.slots:
                self._spawn(slot)
            code = self._watch()
        finally:
            self._stop_all()
            for s, handler in old.items():
                signal.signal(s, handler)
        return code

    def _watch(self) -> int:
        while not self._stopping:
            if self._hup:
                self._hup = False
                self._signal_all(signal.SIGHUP)
            for slot in self.slots:
                proc = slot.proc
                if proc is None or proc.poll() is None or self._stopping:
                    continue
                lived = time.monotonic() - slot.started
                slot.early_exits = slot.early_exits + 1 if lived < _EARLY_EXIT_S else 0
                if slot.early_exits >= _MAX_EARLY_EXITS:
                    print(f"gearshift: worker {slot.index} exited with code {proc.returncode} "
                          f"{slot.early_exits} times within {_EARLY_EXIT_S:g}s of starting; stopping",
                          file=sys.stderr, flush=True)
                    return 1
                slot.restarts += 1
                print(f"gearshift: worker {slot.index} (pid {proc.pid}) exited with code {proc.returncode}; "
                      "starting a new one", file=sys.stderr, flush=True)
                self._spawn(slot)
            time.sleep(_POLL_S)
        return 0

    def _stop_all(self) -> None:
        """SIGTERM every worker once, wait for their drains, then SIGKILL what outlives drain + a margin."""
        self._signal_all(signal.SIGTERM)
        for sock in self.socks:  # with every worker's copy closed as it stops, new connections are refused
            sock.close()
        deadline = time.monotonic() + self.drain_timeout_s + 15.0  # the writer's flush after the drain
        for slot in self.slots:
            proc = slot.proc
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"gearshift: worker {slot.index} (pid {proc.pid}) did not stop in time; killing it",
                      file=sys.stderr, flush=True)
                proc.kill()
                proc.wait(5)
