"""The per-request cost of the web framework integrations (Flask, Django, ASGI/Starlette).

Usage (from the repository root, with the project's environment)::

    .venv/bin/python bench/middleware.py            # -> bench/results/middleware.{json,md}
    .venv/bin/python bench/middleware.py --quick    # a smoke test, a few hundred requests

Each framework serves the same app twice, in this process and without a network: once
bare, once with the integration. The view tracks one event in both (to an emitter that
keeps it in memory), so the difference is all the integration adds to a request: reading
the IP, cookies, language and user, opening and closing the scope, and merging the
scope's fields into the event. Requests to the two apps alternate (A B A B ...), so a
busy moment of the machine hits both alike. Reported per framework: the median and
99th percentile of each app's request time, and the added time at both (the difference),
each the median over ``--rounds`` rounds (a p99 on a shared machine is noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))

from snowplow_tracker import Subject, Tracker  # noqa: E402

SID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"
HEADERS = {
    "Host": "shop.example",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Accept-Language": "en-GB,en;q=0.9",
    "X-Forwarded-For": "203.0.113.7",
    "Cookie": f"_sp_id.1fff=4b0e7ee5-8d6e-4a48-94c0-6a3c1e3e5d6f.1700000000.3.1700000300."
    f"1700000100.{SID}; sp=9c1b0a14-5d3e-4f0a-8b7c-2d1e0f9a8b7c; csrftoken=abc",
}


class Sink:
    """An emitter that keeps nothing: the tracker's work is measured, not the network's."""

    def input(self, payload: dict[str, Any]) -> None:
        pass


def tracker() -> Tracker:
    return Tracker(Sink(), Subject().set_platform("srv"), namespace="bench", app_id="bench")


def user_id(request: Any) -> str:
    return "user-42"


# -- WSGI ------------------------------------------------------------------------------------


def environ() -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/buy/book",
        "QUERY_STRING": "",
        "SERVER_NAME": "shop.example",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in HEADERS.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def wsgi_call(app: Callable[..., Any]) -> Callable[[], None]:
    base = environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def call() -> None:
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(b"")
        body = app(env, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()

    return call


def flask_apps() -> tuple[Callable[[], None], Callable[[], None]]:
    from flask import Flask

    from snowplow_tracker.integrations.flask import Snowplow

    def make(integrated: bool) -> Any:
        app = Flask("bench")
        shared = tracker()
        if integrated:
            Snowplow(app, tracker=shared, trusted_proxies=["127.0.0.1"], user_id=user_id)

        @app.get("/buy/<item>")
        def buy(item: str) -> str:
            shared.track_struct_event("shop", "buy", label=item)
            return "ok"

        return app.wsgi_app

    return wsgi_call(make(False)), wsgi_call(make(True))


def django_apps() -> tuple[Callable[[], None], Callable[[], None]]:
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import path

    shared = tracker()

    def buy(request: Any, item: str) -> HttpResponse:
        shared.track_struct_event("shop", "buy", label=item)
        return HttpResponse("ok")

    module = sys.modules[__name__]
    module.urlpatterns = [path("buy/<str:item>", buy)]  # type: ignore[attr-defined]
    module.bench_tracker = shared  # type: ignore[attr-defined]
    module.bench_user_id = user_id  # type: ignore[attr-defined]
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        USE_TZ=True,
        MIDDLEWARE=[],
        SNOWPLOW={
            "TRACKER": shared,
            "USER_ID": user_id,
            "TRUSTED_PROXIES": ["127.0.0.1"],
        },
    )
    django.setup()
    bare = WSGIHandler()
    settings.MIDDLEWARE = ["snowplow_tracker.integrations.django.SnowplowMiddleware"]
    integrated = WSGIHandler()
    return wsgi_call(bare), wsgi_call(integrated)


# -- ASGI ------------------------------------------------------------------------------------


def asgi_apps() -> tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from snowplow_tracker.integrations.asgi import SnowplowMiddleware

    shared = tracker()

    async def buy(request: Any) -> PlainTextResponse:
        shared.track_struct_event("shop", "buy", label=request.path_params["item"])
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/buy/{item}", buy)])
    integrated = SnowplowMiddleware(
        app, tracker=shared, trusted_proxies=["127.0.0.1"], user_id=user_id
    )
    return app, integrated


def asgi_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/buy/book",
        "raw_path": b"/buy/book",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("shop.example", 80),
    }


async def asgi_call(app: Any, base: dict[str, Any]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    await app(dict(base), receive, send)


# -- measuring -------------------------------------------------------------------------------


def paired(bare: Callable[[], None], integrated: Callable[[], None], n: int) -> dict[str, Any]:
    for _ in range(min(n, 500)):  # warm up both
        bare()
        integrated()
    gc.collect()
    times: tuple[list[int], list[int]] = ([], [])
    clock = time.perf_counter_ns
    for _ in range(n):
        for call, into in ((bare, times[0]), (integrated, times[1])):
            start = clock()
            call()
            into.append(clock() - start)
    return summary(*times)


async def paired_async(bare: Any, integrated: Any, n: int) -> dict[str, Any]:
    base = asgi_scope()
    for _ in range(min(n, 500)):
        await asgi_call(bare, base)
        await asgi_call(integrated, base)
    gc.collect()
    times: tuple[list[int], list[int]] = ([], [])
    clock = time.perf_counter_ns
    for _ in range(n):
        for app, into in ((bare, times[0]), (integrated, times[1])):
            start = clock()
            await asgi_call(app, base)
            into.append(clock() - start)
    return summary(*times)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def summary(bare: list[int], integrated: list[int]) -> dict[str, Any]:
    us = 1000.0
    med_b, med_i = statistics.median(bare) / us, statistics.median(integrated) / us
    p99_b, p99_i = percentile(bare, 0.99) / us, percentile(integrated, 0.99) / us
    return {
        "requests": len(bare),
        "bare_median_us": round(med_b, 2),
        "bare_p99_us": round(p99_b, 2),
        "with_median_us": round(med_i, 2),
        "with_p99_us": round(p99_i, 2),
        "added_median_us": round(med_i - med_b, 2),
        "added_p99_us": round(p99_i - p99_b, 2),
    }


def scope_merge(n: int) -> dict[str, Any]:
    """What a scope adds to one ``track_struct_event`` (the merge of its fields)."""
    from snowplow_tracker.scope import tracker_scope

    shared = tracker()
    subject = Subject().set_user_id("user-42").set_ip_address("203.0.113.7")
    subject.set_domain_session_id(SID).set_useragent(HEADERS["User-Agent"])

    def bare() -> None:
        shared.track_struct_event("shop", "buy", label="book")

    def scoped() -> None:
        with tracker_scope(subject):
            shared.track_struct_event("shop", "buy", label="book")

    return paired(bare, scoped, n)


def median_of(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Each statistic's median over the rounds (the request count is per round)."""
    merged = {key: statistics.median(s[key] for s in summaries) for key in summaries[0]}
    merged["requests"] = summaries[0]["requests"]
    merged["rounds"] = len(summaries)
    return merged


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| framework | requests x rounds | bare median / p99 (µs) "
        "| with integration median / p99 (µs) | added median (µs) | added p99 (µs) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['requests']} x {r['rounds']} "
            f"| {r['bare_median_us']} / {r['bare_p99_us']} "
            f"| {r['with_median_us']} / {r['with_p99_us']} "
            f"| {r['added_median_us']} | {r['added_p99_us']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per app and framework")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests, 1 round")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "middleware")
    args = parser.parse_args(argv)
    n, rounds = (300, 1) if args.quick else (args.requests, args.rounds)
    flask, django, asgi = flask_apps(), django_apps(), asgi_apps()
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for name, run in (
            ("Flask (WSGI, Snowplow extension)", lambda: paired(*flask, n)),
            ("Django (WSGI, SnowplowMiddleware)", lambda: paired(*django, n)),
            ("Starlette (ASGI, SnowplowMiddleware)", lambda: asyncio.run(paired_async(*asgi, n))),
            ("tracker_scope() around one event, no framework", lambda: scope_merge(n)),
        ):
            runs.setdefault(name, []).append(run())
    results = {name: median_of(summaries) for name, summaries in runs.items()}
    report = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(results)
    args.out.with_suffix(".md").write_text(
        f"Per-request cost of the integrations (Python {report['python']}, "
        f"{report['machine']}).\n\n{text}"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
