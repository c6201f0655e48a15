"""The benchmarks' minimal HTTP/1.1 harness (benchmarks/_upstream.py, benchmarks/_loadgen.py) over real sockets
on 127.0.0.1: the upstream reads whole requests and echoes the model; the client frames and reads whole
responses (Content-Length, chunked, read-until-close) and survives a server closing an idle connection."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _loadgen import AiohttpClient, RawClient, Request
from _upstream import ANSWER
from gateway_overhead import start_upstream, stop

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    proc, base = start_upstream(None)
    try:
        yield proc, base
    finally:
        stop(proc)


def exchange(port: int, raw: bytes) -> bytes:
    """Send `raw` on one connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_request_bodies_are_json_with_a_distinct_prompt_each() -> None:
    req = Request("http://127.0.0.1:9/v1/chat/completions", "m", 'say "hi"', HEADERS)
    first, second = json.loads(req.body()), json.loads(req.body())
    assert first["model"] == "m" and first["max_tokens"] == 64
    assert first["messages"][0]["content"].startswith('say "hi" (ref ')
    assert first["messages"] != second["messages"]
    same = Request("http://127.0.0.1:9/v1/chat/completions", "m", "p", HEADERS, same_prompt=True)
    assert json.loads(same.body())["messages"][0]["content"] == "p" == json.loads(same.body())["messages"][0]["content"]
    head, _, body = req.wire().partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert b"\r\nAuthorization: Bearer sk-test\r\n" in head
    assert head.endswith(b"Content-Length: %d" % len(body))


@pytest.mark.parametrize("make", [RawClient, AiohttpClient])
async def test_client_round_trips_through_the_upstream(upstream: tuple[subprocess.Popen[bytes], str],
                                                        make: Callable[[], RawClient | AiohttpClient]) -> None:
    client = make()
    try:
        req = Request(upstream[1] + "/chat/completions", "echo-me", "hello", HEADERS)
        answers = await asyncio.gather(*(client.post(req) for _ in range(5)))
        for _ in range(3):  # kept-alive connections are reused
            answers.append(await client.post(req))
        for status, body in answers:
            got = json.loads(body)
            assert status == 200
            assert got["model"] == "echo-me" and got["choices"][0]["message"]["content"] == ANSWER
        status, body = await client.post(Request(upstream[1] + "/nowhere", "m", "x", HEADERS))
        assert status == 404 and b"not found" in body
    finally:
        await client.close()


def test_upstream_frames_chunked_pipelined_and_bad_requests(upstream: tuple[subprocess.Popen[bytes], str]) -> None:
    port = int(upstream[1].rsplit(":", 1)[1].split("/")[0])
    body = json.dumps({"model": "chunky", "messages": [{"role": "user", "content": "x"}]}).encode()
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    no_messages, streamed = b'{"model":"m"}', b'{"model":"m","stream":true,"messages":[{"role":"user"}]}'
    post = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
    raw = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
           + post % (len(no_messages), no_messages) + post % (len(streamed), streamed)
           + b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
           + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    replies = exchange(port, raw).split(b"HTTP/1.1 ")[1:]
    assert [r.split(b" ", 1)[0] for r in replies] == [b"200", b"400", b"400", b"200", b"200"]
    assert json.loads(replies[0].split(b"\r\n\r\n", 1)[1])["model"] == "chunky"
    assert b"bench-model" in replies[3] and replies[4].endswith(b'{"status":"ok"}')
    assert exchange(port, b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")


def test_upstream_stops_when_its_stdin_closes() -> None:
    proc, _ = start_upstream(None)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(10) == 0


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serving(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)


async def test_raw_client_reads_chunked_and_close_framed_responses() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # first: chunked, with an extension and a trailer; kept alive
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\n{\"a\r\n4\r\n\":1}\r\n"
                     b"0\r\nX-Trailer: t\r\n\r\n")
        await read_request(reader)  # second: no length, the body ends with the connection
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"b\":2}")
        await writer.drain()
        writer.close()

    server, url = await serving(handler)
    client = RawClient()
    try:
        req = Request(url, "m", "p", HEADERS)
        assert await client.post(req) == (200, b'{"a":1}')
        assert await client.post(req) == (200, b'{"b":2}')
    finally:
        await client.close()
        server.close()


async def test_raw_client_replaces_a_connection_the_server_closed_while_idle() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()  # an idle keep-alive timeout, without saying so in the response

    server, url = await serving(handler)
    client = RawClient()
    try:
        req = Request(url, "m", "p", HEADERS)
        assert [await client.post(req) for _ in range(3)] == [(200, b"{}")] * 3
        assert connections == 3
    finally:
        await client.close()
        server.close()


async def test_raw_client_times_out_a_silent_server() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    server, url = await serving(handler)
    client = RawClient(timeout_s=0.5)
    try:
        with pytest.raises(TimeoutError):
            await client.post(Request(url, "m", "p", HEADERS))
    finally:
        await client.close()
        server.close()
