"""A test double for a self-hosted ntfy server: the real one cannot be installed here.

It implements the part of ntfy's documented HTTP API that onionpost uses, and rejects what
ntfy rejects (checked against ntfy's server/server.go and server/errors.go):

- `POST /` or `PUT /` with a JSON body {topic, message, title, priority, tags, ...}
  publishes (https://docs.ntfy.sh/publish/#publish-as-json). Not a JSON object: 400
  (40024); topic missing or not `[-_A-Za-z0-9]{1,64}`: 400 (40009); priority outside
  0..5: 400 (40007); body over 8 KiB: 413 (41303); empty message: "triggered".
- Authentication (https://docs.ntfy.sh/publish/#authentication): `Authorization: Bearer
  <token>` or `Basic <user:password>`. Unknown credentials: 401 (40101). When the double
  is started with credentials, anonymous publishing is denied as with
  `auth-default-access: deny-all`: 403 (40301).
- `GET /v1/health`: {"healthy": true}.

For tests only (not ntfy's API): `GET /_double/messages`, every published message (all
topics) as a JSON list, for the compose tests; in-process tests read the requests and
messages and inject failures through NtfyDouble's methods.

Run it in a thread (NtfyDouble(...).start()) or as a process for the compose tests:
`python -m tests.support.ntfy_double --host 0.0.0.0 --port 8080 --token tk_x --user u:p`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")
JSON_BODY_LIMIT = 8192  # ntfy: 2 x message-size-limit (4096)
MESSAGE_TTL = 12 * 3600  # ntfy's default cache-duration

ERRORS: dict[int, tuple[int, str]] = {
    40007: (400, "invalid priority parameter"),
    40009: (400, "invalid request: topic invalid"),
    40024: (400, "invalid request: request body must be valid JSON"),
    40101: (401, "unauthorized"),
    40301: (403, "forbidden"),
    40401: (404, "page not found"),
    41303: (413, "JSON body too large"),
}


class RejectedError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Recorder:
    """What the double has seen and published; shared by the handler threads."""

    tokens: set[str] = field(default_factory=set)
    users: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def protected(self) -> bool:
        return bool(self.tokens or self.users)

    def authenticate(self, header: str | None) -> str | None:
        """The user name (or "token"), None for anonymous; RejectedError(40101) if wrong."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            if value.strip() in self.tokens:
                return "token"
            raise RejectedError(40101)
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode(
                    ).partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise RejectedError(40101) from None
            if user in self.users and secrets.compare_digest(self.users[user], password):
                return user
            raise RejectedError(40101)
        return None  # ntfy ignores unsupported schemes: anonymous

    def authorize(self, user: str | None) -> None:
        if self.protected and user is None:
            raise RejectedError(40301)


def parse_message(body: bytes) -> dict[str, Any]:
    """Validate a JSON publish body as ntfy does; return the stored message."""
    if len(body) > JSON_BODY_LIMIT:
        raise RejectedError(41303)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RejectedError(40024) from None
    if not isinstance(data, dict):
        raise RejectedError(40024)
    topic = data.get("topic")
    if not isinstance(topic, str) or not TOPIC.match(topic):
        raise RejectedError(40009)
    for name in ("message", "title"):
        if not isinstance(data.get(name, ""), str):
            raise RejectedError(40024)
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise RejectedError(40024)
    priority = data.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise RejectedError(40024)
    if not 0 <= priority <= 5:
        raise RejectedError(40007)
    now = int(time.time())
    message: dict[str, Any] = {
        "id": secrets.token_urlsafe(9)[:12], "time": now, "expires": now + MESSAGE_TTL,
        "event": "message", "topic": topic, "message": data.get("message") or "triggered"}
    if data.get("title"):
        message["title"] = data["title"]
    if priority:
        message["priority"] = priority
    if tags:
        message["tags"] = tags
    return message


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DoubleServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read the recorder instead

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        try:
            status, payload = self._route(path, body)
        except RejectedError as rejected:
            status, text = ERRORS[rejected.code]
            payload = json.dumps({"code": rejected.code, "http": status, "error": text}) + "\n"
        if not path.startswith("/_double/"):
            self._record(body, status)
        self._reply(status, payload)

    def _route(self, path: str, body: bytes) -> tuple[int, str]:
        recorder = self.server.recorder
        if path == "/_double/messages" and self.command == "GET":
            with recorder.lock:
                return 200, json.dumps(recorder.messages)
        if path == "/v1/health" and self.command == "GET":
            return 200, json.dumps({"healthy": True}) + "\n"
        if path == "/" and self.command in ("POST", "PUT"):
            with recorder.lock:
                failure = recorder.failures.pop(0) if recorder.failures else None
            if failure is not None:
                return failure, json.dumps({"code": failure * 100 + 1, "http": failure,
                                            "error": "injected failure"}) + "\n"
            user = recorder.authenticate(self.headers.get("Authorization"))
            message = parse_message(body)
            recorder.authorize(user)
            with recorder.lock:
                recorder.messages.append(message)
            return 200, json.dumps(message) + "\n"
        raise RejectedError(40401)

    def _record(self, body: bytes, status: int) -> None:
        entry = {"method": self.command, "path": self.path, "status": status,
                 "client_port": self.client_address[1],
                 "headers": [[name, value] for name, value in self.headers.items()],
                 "body": body.decode("utf-8", "replace")}
        with self.server.recorder.lock:
            self.server.recorder.requests.append(entry)

    def _reply(self, status: int, payload: str) -> None:
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class DoubleServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], recorder: Recorder) -> None:
        super().__init__(address, Handler)
        self.recorder = recorder


class NtfyDouble:
    """The double in a background thread, for in-process tests."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", tokens: tuple[str, ...] = (),
                 users: dict[str, str] | None = None) -> None:
        self.recorder = Recorder(set(tokens), dict(users or {}))
        self.server = DoubleServer((host, port), self.recorder)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name="ntfy-double", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NtfyDouble:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def messages(self, topic: str | None = None) -> list[dict[str, Any]]:
        with self.recorder.lock:
            return [m for m in self.recorder.messages if topic is None or m["topic"] == topic]

    def requests(self) -> list[dict[str, Any]]:
        with self.recorder.lock:
            return list(self.recorder.requests)

    def fail_next(self, status: int, count: int = 1) -> None:
        with self.recorder.lock:
            self.recorder.failures.extend([status] * count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ntfy test double (JSON publishing only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", action="append", default=[], help="accepted Bearer token")
    parser.add_argument("--user", action="append", default=[], help="accepted user:password")
    args = parser.parse_args(argv)
    users = dict(entry.split(":", 1) for entry in args.user)
    server = DoubleServer((args.host, args.port), Recorder(set(args.token), users))
    print(f"ntfy double listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
