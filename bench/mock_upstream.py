"""A fast local mock of OpenAI's chat API for benchmarks: raw asyncio protocol, uvloop, httptools.

Endpoints:
- POST /v1/chat/completions: a JSON completion with usage, or with ``"stream": true`` an SSE
  stream of ``--chunks`` content chunks ``--delay-ms`` apart (the first at once), a final chunk
  with ``finish_reason``, the usage chunk when ``stream_options.include_usage`` is true, then
  ``data: [DONE]``. The headers ``x-mock-chunks`` and ``x-mock-delay-ms`` override both per request.
- GET /v1/models: one model, ``bench-model``.

It checks nothing (any API key works) and is meant to be the fastest thing in the room:

    .venv/bin/python bench/mock_upstream.py --port 9100 --chunks 20 --delay-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import time
from typing import Any

import httptools
import orjson
import uvloop

_ids = itertools.count(1)
_STATUS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}
USAGE = {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}


def json_response(status: int, body: bytes, keep_alive: bool) -> bytes:
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
        % (status, _STATUS[status], len(body), b"" if keep_alive else b"connection: close\r\n")
    )
    return head + body


def error_response(status: int, message: str, keep_alive: bool) -> bytes:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return json_response(status, orjson.dumps(body), keep_alive)


def completion(model: str, words: int) -> bytes:
    return orjson.dumps({
        "id": f"chatcmpl-mock{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(["word"] * words),
                                             "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {**USAGE, "completion_tokens": words, "total_tokens": USAGE["prompt_tokens"] + words},
    })


def sse_chunk(payload: dict[str, Any]) -> bytes:
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


_SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
             b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
_DONE = b"data: [DONE]\n\n"
_DONE_CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(_DONE), _DONE)


class Stream:
    """One SSE response, written chunk by chunk from loop timers (no task per stream)."""

    def __init__(self, proto: MockProtocol, model: str, chunks: int, delay: float, include_usage: bool) -> None:
        self.proto = proto
        self.base = {"id": f"chatcmpl-mock{next(_ids)}", "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": model, "system_fingerprint": "fp_mock"}
        self.chunks = chunks
        self.delay = delay
        self.include_usage = include_usage
        self.sent = 0

    def start(self) -> None:
        self.proto.write(_SSE_HEAD)
        self.step()

    def step(self) -> None:
        if self.proto.closed:
            return
        if self.sent < self.chunks:
            delta: dict[str, Any] = {"content": "word "}
            if self.sent == 0:
                delta["role"] = "assistant"
            self.proto.write(sse_chunk({**self.base, "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}))
            self.sent += 1
            if self.sent < self.chunks:
                self.proto.loop.call_later(self.delay, self.step)
                return
        tail = sse_chunk({**self.base, "choices": [
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
        if self.include_usage:
            usage = {**USAGE, "completion_tokens": self.chunks, "total_tokens": USAGE["prompt_tokens"] + self.chunks}
            tail += sse_chunk({**self.base, "choices": [], "usage": usage})
        self.proto.write(tail + _DONE_CHUNKED)
        self.proto.finish_message()


class MockProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive server for one connection; requests are answered in order."""

    chunks = 20
    delay = 0.05
    words = 20

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.write(error_response(400, "Malformed HTTP request.", False))
            self.transport.close()  # type: ignore[union-attr]

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        try:
            self.handle(method, path)
        finally:
            self._reset()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    def finish_message(self) -> None:
        if not self.keep_alive and not self.closed:
            self.transport.close()  # type: ignore[union-attr]

    def handle(self, method: bytes, path: bytes) -> None:
        if path.endswith(b"/chat/completions"):
            if method != b"POST":
                self.write(error_response(405, "Use POST.", self.keep_alive))
                return self.finish_message()
            try:
                body = orjson.loads(b"".join(self.body))
            except orjson.JSONDecodeError:
                self.write(error_response(400, "Invalid JSON body.", self.keep_alive))
                return self.finish_message()
            model = str(body.get("model") or "bench-model")
            if body.get("stream"):
                chunks = int(self.headers.get(b"x-mock-chunks", self.chunks))
                delay = float(self.headers.get(b"x-mock-delay-ms", self.delay * 1000)) / 1000
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return Stream(self, model, max(chunks, 1), delay, include_usage).start()
            self.write(json_response(200, completion(model, self.words), self.keep_alive))
        elif path.endswith(b"/models") and method == b"GET":
            models = {"object": "list", "data": [
                {"id": "bench-model", "object": "model", "created": 1700000000, "owned_by": "bench"}]}
            self.write(json_response(200, orjson.dumps(models), self.keep_alive))
        else:
            self.write(error_response(404, f"No route for {path.decode('latin-1')}.", self.keep_alive))
        self.finish_message()


def make_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, sock=sock, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunks", type=int, default=20,
                        help="content chunks per stream (default %(default)s)")
    parser.add_argument("--delay-ms", type=float, default=50.0,
                        help="milliseconds between stream chunks (default %(default)s)")
    parser.add_argument("--words", type=int, default=20, help="words in a non-streamed reply")
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    args = parser.parse_args()
    MockProtocol.chunks, MockProtocol.delay, MockProtocol.words = args.chunks, args.delay_ms / 1000, args.words
    sock = make_socket(args.host, args.port, args.processes > 1)
    print(f"mock upstream on http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)
    for _ in range(args.processes - 1):
        if os.fork() == 0:
            break
    uvloop.run(serve(sock))


if __name__ == "__main__":
    main()
