"""A switchable TCP proxy on 127.0.0.1 to fake a database that is down or hung without touching the real server.

`up` forwards bytes both ways; `down` closes every open connection and accepts-then-closes new ones (a
crashed or restarting server); `hung` accepts new connections but forwards nothing in either direction
(a black hole: the peer's kernel still ACKs, so only an application-level deadline notices). Switching
back to `up` resumes forwarding what was held, like a server that un-freezes.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Literal

Mode = Literal["up", "down", "hung"]
_TICK_S = 0.05


class TcpProxy:
    """`with TcpProxy("127.0.0.1", 5432) as p:` then connect to `p.port`; `p.set_mode("hung")` etc."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "up"
        self._cond = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.accepted = 0

    def set_mode(self, mode: Mode) -> None:
        with self._cond:
            self.mode = mode
            doomed = list(self._sockets) if mode == "down" else []
            self._cond.notify_all()
        for s in doomed:
            _kill(s)

    def __enter__(self) -> TcpProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            doomed = list(self._sockets)
            self._cond.notify_all()
        for s in doomed:
            _kill(s)
        self._listener.close()
        for t in self._threads:
            t.join(2)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name="tcp-proxy")  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _track(self, s: socket.socket) -> bool:
        with self._cond:
            if self._closed or self.mode == "down":
                return False
            self._sockets.add(s)
            return True

    def _wait_not_hung(self) -> bool:
        """Block while hung; False once the proxy is down or closed (the caller drops the connection)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self.mode != "hung")
            return not self._closed and self.mode == "up"

    def _accept_loop(self) -> None:
        self._listener.settimeout(_TICK_S)
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if not self._track(client):
                _kill(client)
                continue
            self._spawn(self._connect, client)

    def _connect(self, client: socket.socket) -> None:
        if not self._wait_not_hung():
            _kill(client)
            return
        try:
            server = socket.create_connection(self.target, timeout=3)
        except OSError:
            _kill(client)
            return
        if not self._track(server):
            _kill(client)
            _kill(server)
            return
        self._spawn(self._pump, client, server)
        self._spawn(self._pump, server, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                if not self._wait_not_hung():
                    break
                ready, _, _ = select.select([src], [], [], _TICK_S)
                if not ready:
                    continue
                if not self._wait_not_hung():  # hung between select and recv: hold the bytes in the kernel
                    break
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            _kill(src)
            _kill(dst)
            with self._cond:
                self._sockets.discard(src)
                self._sockets.discard(dst)


def _kill(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
