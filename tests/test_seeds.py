"""Every Python example in the 0.4.0 and 0.5.0 release notes runs as written against a real
collector (only the collector host is changed), and every event it sends arrives and validates.

The notes are read from ``../shared/seeds`` when it is there (CI), else from the copy in
``tests/seeds``. Each file's blocks run in order in one namespace, like a reader's session,
which starts with the 0.4.0 notes' own import line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker.collector import Collector

HOSTS = ("d3rkrsqld9gmqf.cloudfront.net", "drywb53f72ag6j.cloudfront.net")
PRELUDE = "from snowplow_tracker import Subject, Emitter, AsyncEmitter, Tracker"
BLOCK = re.compile(r"{% highlight (\w+) %}\n(.*?){% endhighlight %}", re.S)

# The 0.4.0 contexts example is JavaScript-flavoured (bare keys, `new Date(...)`), so it cannot
# run as Python; this is the same call written in Python, with the date as an ISO string.
CONTEXTS_EXAMPLE_IN_PYTHON = """
t.track_page_view("localhost", None, "http://www.referrer.com", [{
    "schema": "iglu:com.example_company/page/jsonschema/1-2-1",
    "data": {
        "pageType": 'test',
        "lastUpdated": "2014-02-26T00:00:00Z"
    }
},
{
    "schema": "iglu:com.example_company/user/jsonschema/2-0-0",
    "data": {
      "userType": 'tester'
    }
}])
"""


def seed_dir() -> Path:
    shared = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    return shared if shared.is_dir() else Path(__file__).parent / "seeds"


def seed_file(version: str) -> str:
    for path in sorted(seed_dir().glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if f"Python Tracker {version} released" in text:
            return text
    raise AssertionError(f"no release notes for {version} in {seed_dir()}")


def python_blocks(text: str) -> list[str]:
    return [code for language, code in BLOCK.findall(text) if language == "python"]


def is_signature_only(code: str) -> bool:
    lines = [line for line in code.strip().splitlines() if line.strip()]
    return lines[0].lstrip().startswith("def __init__") and lines[-1].rstrip().endswith(":")


def runnable(code: str) -> str:
    """The block as it runs here: the collector host swapped in, JS-flavoured code translated."""
    try:
        compile(code, "<seed>", "exec")
    except SyntaxError:
        assert "new Date(" in code, "only the JS-flavoured contexts example may fail to compile"
        return CONTEXTS_EXAMPLE_IN_PYTHON
    return code


def run_notes(version: str, collector: Collector) -> list[str]:
    namespace: dict[str, Any] = {}
    exec(PRELUDE, namespace)
    ran = []
    for code in python_blocks(seed_file(version)):
        if is_signature_only(code):
            continue  # a constructor signature quoted for reference, not an example
        if "RedisWorker(" in code:
            continue  # runs forever by design; tests/test_redis_worker*.py runs it with a stop
        source = runnable(code)
        for host in HOSTS:
            source = source.replace(f'"{host}"', f'"{collector.endpoint}"')
        exec(compile(source, f"<{version} release notes>", "exec"), namespace)
        for value in list(namespace.values()):
            if hasattr(value, "sync_flush") and not isinstance(value, type):
                value.sync_flush()
        ran.append(code)
    return ran


def assert_all_valid(collector: Collector) -> None:
    assert collector.violations == []
    assert [(e.get("e"), e.errors) for e in collector.bad()] == []


def test_0_4_0_examples(collector: Collector, capsys: pytest.CaptureFixture[str]) -> None:
    ran = run_notes("0.4.0", collector)
    assert len(ran) == 9
    assert_all_valid(collector)
    kinds = [e["e"] for e in collector.events]
    # subjects (2 pv), return values (1 pv), async (pv + screen view), unstruct (1), contexts (1 pv)
    assert sorted(kinds) == sorted(["pv", "pv", "pv", "pv", "ue", "ue", "pv"])
    users = [e.get("uid") for e in collector.events[:2]]
    assert users == ["0a78f2867de", "0b08f8be3f1"]
    assert [e["p"] for e in collector.events[:2]] == ["pc", "mob"]
    product = next(
        e for e in collector.events if e.event_schema and "viewed_product" in e.event_schema
    )
    assert product.unstruct_event == {
        "schema": "iglu:com.acme/viewed_product/jsonschema/2-1-0",
        "data": {"product_id": "ASO01043", "price": 49.95},
    }
    with_contexts = next(e for e in collector.events if e.contexts)
    assert [c["schema"].split("/")[1] for c in with_contexts.contexts] == ["page", "user"]
    assert "Tracker object" in capsys.readouterr().out  # 0.5.0: track_* returns the tracker


def test_0_5_0_examples(collector: Collector) -> None:
    ran = run_notes("0.5.0", collector)
    assert len(ran) == 3
    assert_all_valid(collector)
    # screen view + struct event, each to the GET, POST and added emitter
    assert sorted(e["e"] for e in collector.events) == ["se"] * 3 + ["ue"] * 3
    assert sorted(e.method for e in collector.events) == ["GET"] * 4 + ["POST"] * 2
    assert {e.get("aid") for e in collector.events} == {"my-app-id"}
    struct = next(e for e in collector.events if e["e"] == "se")
    assert (struct["se_ca"], struct["se_ac"], struct["se_la"]) == (
        "products",
        "viewed product",
        "magenta paint",
    )


def test_the_shipped_copy_of_the_notes_matches_the_source() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    if not shared.is_dir():
        pytest.skip("../shared/seeds is not beside the repository")
    local = Path(__file__).parent / "seeds"
    for path in shared.glob("*.txt"):
        assert (local / path.name).read_text() == path.read_text(), path.name
