"""A deliberately slow streaming upstream on raw sockets that notices when its client hangs up.

Each chat request gets `n_chunks` SSE chunks, one every `interval_s`, then `[DONE]`. If the peer
closes the connection first, `closed_early` is set: that is how a test proves the gateway cancelled
the upstream call when its own client went away.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time


class SlowStreamUpstream:
    def __init__(self, *, n_chunks: int = 10, interval_s: float = 0.1) -> None:
        self.n_chunks = n_chunks
        self.interval_s = interval_s
        self.closed_early = threading.Event()
        self.completed = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> SlowStreamUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            part = conn.recv(65536)
            if not part:
                return b""
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(body) < length:
            body += conn.recv(65536)
        return body

    def _peer_closed(self, conn: socket.socket) -> bool:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        try:
            return conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if not self._read_request(conn):
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
            try:
                for i in range(self.n_chunks):
                    chunk = {"id": "slow", "object": "chat.completion.chunk", "created": 0, "model": "slow",
                             "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
                    conn.sendall(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    end = time.monotonic() + self.interval_s
                    while time.monotonic() < end:
                        if self._peer_closed(conn):
                            self.closed_early.set()
                            return
                        time.sleep(0.01)
                conn.sendall(b"data: [DONE]\n\n")
                self.completed += 1
            except OSError:
                self.closed_early.set()
