"""Helpers of the web framework tests: 16 users hammering a real server, and the check that
every event carries its own request's user, IP and cookie ids and none another's."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .redis_celery_support import child_env, end, wait_for_text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLIENTS = 16
REQUESTS = 2000


#: An example app's emitter holding every event until the process exits.
HOLD = {
    "SNOWPLOW_BUFFER_SIZE": "100000",
    "SNOWPLOW_BYTE_LIMIT": "1000000000",
    "SNOWPLOW_FLUSH_INTERVAL": "3600",
}


def example_env(**extra: str) -> dict[str, str]:
    """The environment of an example app's process: examples/ and src/ importable."""
    env = child_env(**extra)
    env["PYTHONPATH"] = f"{EXAMPLES}:{env['PYTHONPATH']}"
    return env


def sid(client: int) -> str:
    return f"{client:08x}-0000-4000-8000-{client:012x}"


def user(client: int) -> dict[str, str]:
    """What the browser of user ``client`` sends, and what its events must carry."""
    return {
        "uid": f"user-{client}",
        "ip": f"203.0.113.{client + 1}",
        "ua": f"agent/{client}",
        "lang": f"en-{client}",
        "duid": f"{client:08x}-1111-4111-8111-{client:012x}",
        "vid": str(client + 1),
        "sid": sid(client),
        "tnuid": f"{client:08x}-2222-4222-8222-{client:012x}",
    }


def cookies(client: int) -> dict[str, str]:
    """The browser tracker's id cookie, the collector's, and one of the app's."""
    fields = user(client)
    sp_id = f"{fields['duid']}.1700000000.{fields['vid']}.1700000300.1700000100.{fields['sid']}"
    return {"_sp_id.1fff": sp_id, "sp": fields["tnuid"], "other": "1"}


def headers(client: int, *, cookie: bool = True) -> dict[str, str]:
    """The request headers of user ``client`` (a test client sets cookies its own way)."""
    fields = user(client)
    jar = "; ".join(f"{name}={value}" for name, value in cookies(client).items())
    return {
        "Authorization": f"Bearer {fields['uid']}",
        # A spoofed first entry, then the address our (trusted, loopback) proxy saw.
        "X-Forwarded-For": f"198.51.100.99, {fields['ip']}",
        "User-Agent": fields["ua"],
        "Accept-Language": f"{fields['lang']},en;q=0.5",
        **({"Cookie": jar} if cookie else {}),
    }


def hammer(
    port: int, paths: Sequence[str] = ("/buy",), clients: int = CLIENTS, total: int = REQUESTS
) -> list[str]:
    """``total`` GETs of ``<path>/<client>-<n>`` from ``clients`` threads, each its own user
    (client ``c`` asks ``paths[c % len(paths)]``); a new connection per request, so a
    threaded server runs them on many threads."""
    errors: list[str] = []
    per_client = total // clients

    def run(client: int) -> None:
        path = paths[client % len(paths)]
        for n in range(per_client):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("GET", f"{path}/{client}-{n}", headers=headers(client))
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    errors.append(f"{response.status}: {body[:200]!r}")
            except OSError as exc:
                errors.append(repr(exc))
            finally:
                connection.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors[:5]
    return [f"{c}-{n}" for c in range(clients) for n in range(per_client)]


def check_own_fields(events: Sequence[Any], labels: Sequence[str]) -> None:
    """Each label's event arrived once, with its own client's fields and none another's."""
    arrived = Counter(e.raw.get("se_la") for e in events)
    assert arrived == Counter(labels), (len(events), len(labels))
    wrong = []
    for event in events:
        expected = user(int(event.raw["se_la"].split("-")[0]))
        got = {name: event.raw.get(name) for name in expected}
        if got != expected:
            wrong.append((event.raw["se_la"], got))
    assert wrong == [], f"{len(wrong)} events carry another request's fields: {wrong[:3]}"
    assert all(e.valid for e in events), [e.errors for e in events if not e.valid][:3]


def free_socket() -> socket.socket:
    """A listening socket on a free loopback port, to hand to a server as a file descriptor."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Server:
    """A server process started by a test (ended by its pid)."""

    def __init__(self, command: Sequence[str], log: Path, env: Mapping[str, str], sock: Any):
        self.log = log
        self.sock = sock
        handle = log.open("wb")
        try:
            self.process = subprocess.Popen(
                list(command),
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=EXAMPLES,
                pass_fds=[sock.fileno()] if sock is not None else [],
            )
        finally:
            handle.close()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        return wait_for_text(self.log, text, timeout)

    def stop(self, signal_number: int, timeout: float = 30) -> int:
        """Send ``signal_number`` and wait for a normal exit; its exit code."""
        self.process.send_signal(signal_number)
        try:
            return self.process.wait(timeout)
        finally:
            end(self.process, grace=1)
            if self.sock is not None:
                self.sock.close()

    def port_from_log(self) -> int:
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.wait_for("listening"))
        assert match, self.log.read_text()
        return int(match.group(1))
