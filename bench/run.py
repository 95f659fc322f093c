"""Benchmark this tracker against snowplow-tracker 1.1.0 and a hand-written reference.

Usage (from the repository root)::

    python bench/run.py             # every scenario, 5 rounds -> bench/results/results.{json,md}
    python bench/run.py --quick     # few events, 1 round: a smoke test -> bench/results/quick.*
    python bench/run.py --scenarios post,get --rounds 7
    python bench/run.py --before f4f4766 --scenarios build,post --without-upstream

Run it with the project's environment (``.venv/bin/python bench/run.py``). The
first run creates ``bench/.venv-upstream`` with snowplow-tracker 1.1.0 from
PyPI. A loopback sink (``bench/sink.py``) runs in its own process on one core
and the cases run on the other when the machine has two. Each round runs every
case of a scenario once, in the same order (A B C A B C ...), each in a fresh
process (``bench/cases.py``), and every case is reported as a ratio to the
reference measured in the same round: median and spread (min-max) over rounds.
Speed is only ever checked here, never by timed assertions in tests.

``--before REV`` also runs, alternating with every case of ours, the same case
on this repository's code at ``REV`` (a git worktree in the temporary directory),
with the same options; a POST case that relies on the default batch is given
``--buffer-size 10`` (ours' default) there, so each pair sends the same batches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
UPSTREAM_VENV = BENCH / ".venv-upstream"
UPSTREAM_SPEC = "snowplow-tracker==1.1.0"
RESULTS = BENCH / "results"


@dataclass(frozen=True)
class Case:
    impl: str
    label: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    events: int
    quick_events: int
    cases: tuple[Case, ...]
    #: the case every other one is divided by ("higher is better" unless lower_is_better)
    baseline: str = "reference"
    metric: str = "events_per_s"
    lower_is_better: bool = False
    target: str = ""
    needs: str = ""


REF = Case("reference", "reference")
OURS = Case("ours", "ours")
UP = Case("upstream", "snowplow-tracker 1.1.0")
#: 1.1.0 with its default batch (10), beside ours with ours (10): the like-for-like pair.
UP10 = Case("upstream", "snowplow-tracker 1.1.0 batch_size=10", ("--buffer-size", "10"))

SCENARIOS = (
    Scenario("build", "Build only (no network)", 200_000, 500, (REF, OURS, UP), target=">= 0.8"),
    Scenario(
        "post",
        "POST end to end, sync Emitter",
        100_000,
        500,
        (REF, OURS, Case("ours", "ours buffer_size=100", ("--buffer-size", "100")), UP, UP10),
        target=">= 1.0, >= 2.5x 1.1.0",
    ),
    Scenario(
        "post-async",
        "POST end to end, AsyncEmitter",
        100_000,
        500,
        (REF, OURS, Case("ours", "ours buffer_size=100", ("--buffer-size", "100")), UP, UP10),
        target=">= 1.3",
    ),
    Scenario("get", "GET, one request per event", 3_000, 100, (REF, OURS, UP), target=">= 0.9"),
    Scenario(
        "context", "POST with one context entity per event", 10_000, 300, (REF, OURS, UP, UP10)
    ),
    Scenario("threads16", "POST from 16 producer threads", 16_000, 320, (REF, OURS, UP, UP10)),
    Scenario(
        "redis",
        "RedisEmitter enqueue / RedisWorker drain (ratio to reference POST)",
        10_000,
        200,
        (REF, Case("ours", "ours redis-enqueue"), Case("ours", "ours redis-drain")),
        needs="redis",
    ),
    Scenario(
        "collector",
        "Collector ingest with validation (ratio to reference POST; CPU is the collector's)",
        20_000,
        100,
        (
            REF,
            Case("collector", "collector ingest"),
            Case("collector", "collector ingest, SQLite", ("--store", "sqlite")),
        ),
        needs="collector",
    ),
    Scenario(
        "memory",
        "Backlog of 100 000 events, collector not answering (KB/event)",
        100_000,
        2_000,
        (
            REF,
            # The whole backlog held; the default queue (10 000 events) drops the rest.
            Case("ours", "ours max_queue_size=100000", ("--max-queue-size", "100000")),
            OURS,
            UP,
        ),
        metric="kb_per_event",
        lower_is_better=True,
        target="<= 0.3 KB/event",
    ),
    Scenario(
        "import",
        "Cold import time (ratio to import requests)",
        1,
        1,
        (Case("requests", "import requests"), OURS, UP),
        baseline="import requests",
        metric="import_ms",
        lower_is_better=True,
        target="<= 1.2",
    ),
)
SCENARIO_CASE_NAMES = {"ours redis-enqueue": "redis-enqueue", "ours redis-drain": "redis-drain"}


@dataclass
class Outcome:
    scenario: str
    label: str
    rounds: list[dict[str, Any]] = field(default_factory=list)


# -- environment --------------------------------------------------------------------------------


def upstream_python() -> Path:
    """The interpreter of the 1.1.0 virtual environment, created on first use."""
    python = UPSTREAM_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {UPSTREAM_VENV} with {UPSTREAM_SPEC} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(UPSTREAM_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, UPSTREAM_SPEC], check=True)
    return python


def cores() -> tuple[int | None, int | None]:
    """(client core, sink core): two different cores when this process may use two."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def redis_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), 1).close()
    except OSError:
        return False
    try:
        import redis  # noqa: F401

        sys.path.insert(0, str(REPO / "src"))
        from snowplow_tracker import redis_worker
    except ImportError:
        return False
    return hasattr(redis_worker, "RedisWorker")


def skip_reason(scenario: Scenario) -> str | None:
    if scenario.needs == "redis" and not redis_up():
        return (
            "needs Redis on 127.0.0.1:6379, the redis package and "
            "snowplow_tracker.redis_worker.RedisWorker"
        )
    if scenario.needs == "collector" and not (BENCH / "collector_ingest.py").exists():
        return "bench/collector_ingest.py is not there yet"
    return None


class Sink:
    """The loopback sink process."""

    def __init__(self, cpu: int | None) -> None:
        command = [sys.executable, str(BENCH / "sink.py")]
        if cpu is not None:
            command += ["--cpu", str(cpu)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the sink did not start: {line}")
        self.port = int(line[1])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- running ------------------------------------------------------------------------------------


def run_case(
    scenario: Scenario, case: Case, events: int, port: int, cpu: int | None, quick: bool
) -> dict[str, Any]:
    if case.impl == "collector":
        return run_collector_ingest(events, case.options)
    python = upstream_python() if case.impl == "upstream" else Path(sys.executable)
    name = SCENARIO_CASE_NAMES.get(case.label, scenario.name)
    if scenario.name in ("redis", "collector") and case.impl == "reference":
        name = "post"
    command = [str(python), str(BENCH / "cases.py"), case.impl, name, "--events", str(events)]
    command += ["--port", str(port), *case.options]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    if scenario.name == "import":
        command += ["--repeat", "2" if quick else "5"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(lines[-1]))


def run_collector_ingest(events: int, options: tuple[str, ...] = ()) -> dict[str, Any]:
    """``bench/collector_ingest.py --events N`` prints a JSON object on its last line with
    ``events`` and ``seconds`` (wall), and optionally ``cpu`` and ``peak_rss_kb``."""
    command = [sys.executable, str(BENCH / "collector_ingest.py"), "--events", str(events)]
    command += options
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"collector_ingest.py failed:\n{done.stdout}\n{done.stderr}")
    result = dict(json.loads(lines[-1]))
    result.setdefault("delivered", result["events"])
    return result


def derive(result: dict[str, Any]) -> dict[str, Any]:
    events = result["events"]
    result["events_per_s"] = events / result["seconds"] if result["seconds"] else 0.0
    result["us_per_event"] = result["seconds"] / events * 1e6
    result["cpu_us_per_event"] = result.get("cpu", 0.0) / events * 1e6
    return result


def before_source(rev: str) -> Path:
    """``src/`` of this repository at ``rev``, checked out once into a temporary directory."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Outside the repository: nothing of it may reach the linters or the sdist.
    tree = Path(tempfile.gettempdir()) / f"snowplow-bench-before-{sha}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), sha], check=True
        )
    return tree / "src"


def with_before(scenario: Scenario, src: Path) -> Scenario:
    """Each of ours' cases followed by its twin on the code before."""
    cases: list[Case] = []
    for case in scenario.cases:
        cases.append(case)
        if case.impl == "ours" and scenario.name not in ("redis", "import", "memory"):
            options = case.options
            if "--buffer-size" not in options and scenario.name not in ("build", "get"):
                options = (*options, "--buffer-size", "10")
            label = "before" + case.label.removeprefix("ours")
            if options != case.options and "buffer_size" not in label:
                label += " buffer_size=10"
            cases.append(Case("ours", label, (*options, "--src", str(src))))
    return replace(scenario, cases=tuple(cases))


def run(args: argparse.Namespace) -> dict[str, Any]:
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios]
    if args.before:
        src = before_source(args.before)
        chosen = [with_before(s, src) for s in chosen]
    if args.without_upstream:
        chosen = [
            replace(s, cases=tuple(c for c in s.cases if c.impl != "upstream")) for s in chosen
        ]
    client_cpu, sink_cpu = cores()
    if args.unpinned:
        client_cpu = None  # the cases run wherever the scheduler puts them, as in production
    if any(case.impl == "upstream" for s in chosen for case in s.cases):
        upstream_python()
    skipped = {s.name: reason for s in chosen if (reason := skip_reason(s))}
    active = [s for s in chosen if s.name not in skipped]
    outcomes = {(s.name, c.label): Outcome(s.name, c.label) for s in active for c in s.cases}
    sink = Sink(sink_cpu)
    started = time.time()
    try:
        for number in range(1, args.rounds + 1):
            for scenario in active:
                events = args.events or (scenario.quick_events if args.quick else scenario.events)
                for case in scenario.cases:
                    result = derive(
                        run_case(scenario, case, events, sink.port, client_cpu, args.quick)
                    )
                    outcomes[(scenario.name, case.label)].rounds.append(result)
                    where = f"round {number} {scenario.name:10} {case.label:24}"
                    print(f"{where} {brief(scenario, result)}", flush=True)
    finally:
        sink.stop()
    return {
        "meta": meta(args, client_cpu, sink_cpu, started),
        "skipped": skipped,
        "scenarios": [summarise(s, outcomes) for s in active],
    }


def brief(scenario: Scenario, result: dict[str, Any]) -> str:
    if scenario.metric == "events_per_s":
        return f"{result['events_per_s']:>10.0f} events/s"
    return f"{result[scenario.metric]:>10.3f} {scenario.metric}"


def meta(
    args: argparse.Namespace, client_cpu: int | None, sink_cpu: int | None, started: float
) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    )
    return {
        "command": "python bench/run.py"
        + ("" if not sys.argv[1:] else " " + " ".join(sys.argv[1:])),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "rounds": args.rounds,
        "quick": args.quick,
        "commit": commit.stdout.strip(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "client_cpu": client_cpu,
        "sink_cpu": sink_cpu,
    }


def summarise(scenario: Scenario, outcomes: dict[tuple[str, str], Outcome]) -> dict[str, Any]:
    base = outcomes[(scenario.name, scenario.baseline)].rounds
    cases = []
    for case in scenario.cases:
        rounds = outcomes[(scenario.name, case.label)].rounds
        ratios = [ratio(scenario, mine, theirs) for mine, theirs in zip(rounds, base)]
        cpu = [cpu_ratio(mine, theirs) for mine, theirs in zip(rounds, base)]
        cases.append(
            {
                "label": case.label,
                "events": rounds[0]["events"],
                "median": {key: median(rounds, key) for key in _KEYS if key in rounds[0]},
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "cpu_ratio": statistics.median(cpu),
                "all_delivered": all(
                    r.get("delivered", r["events"]) == r["events"] for r in rounds
                ),
                "failed": sum(r.get("failed", 0) for r in rounds),
                "rounds": rounds,
            }
        )
    return {
        "name": scenario.name,
        "title": scenario.title,
        "metric": scenario.metric,
        "baseline": scenario.baseline,
        "lower_is_better": scenario.lower_is_better,
        "target": scenario.target,
        "cases": cases,
    }


_KEYS = (
    "events_per_s",
    "us_per_event",
    "cpu_us_per_event",
    "peak_rss_kb",
    "kb_per_event",
    "kb_per_kept_event",
    "import_ms",
)


def ratio(scenario: Scenario, mine: dict[str, Any], theirs: dict[str, Any]) -> float:
    key = scenario.metric
    return float(mine[key] / theirs[key]) if theirs[key] else 0.0


def cpu_ratio(mine: dict[str, Any], theirs: dict[str, Any]) -> float:
    """Reference CPU per event over ours (higher is better): steadier than wall time on a
    shared machine, and blind to how long the sink takes to answer."""
    mine_cpu, theirs_cpu = mine.get("cpu_us_per_event", 0.0), theirs.get("cpu_us_per_event", 0.0)
    return float(theirs_cpu / mine_cpu) if mine_cpu else 0.0


def median(rounds: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


# -- reporting ----------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m = report["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"`{m['command']}` at {m['started']} (commit {m['commit']}), {m['rounds']} round(s), "
        f"Python {m['python']}, {m['machine']}; client on core {m['client_cpu']}, sink on core "
        f"{m['sink_cpu']}; {m['seconds']} s.",
        "",
        "Ratios are to the baseline measured in the same round: median (min-max) over rounds. "
        "For events/s higher is better; for KB/event and import time lower is better. "
        "The CPU ratio is the reference's client CPU per event over the case's (higher is "
        "better): steadier than wall time on a shared machine.",
        "",
    ]
    for s in report["scenarios"]:
        target = f" — target {s['target']}" if s["target"] else ""
        lines += [f"## {s['title']}{target}", ""]
        lines += [_header(s), "|" + "---|" * len(_header(s).split("|")[1:-1])]
        lines += [_row(s, case) for case in s["cases"]]
        lines.append("")
    for name, reason in report["skipped"].items():
        lines.append(f"- skipped `{name}`: {reason}")
    return "\n".join(lines).rstrip() + "\n"


def _header(s: dict[str, Any]) -> str:
    if s["metric"] == "kb_per_event":
        return (
            "| case | KB/event | events held | KB/held event | µs/event | peak RSS MB "
            "| ratio to reference |"
        )
    if s["metric"] == "import_ms":
        return "| case | import ms | ratio to import requests |"
    return (
        "| case | events/s | µs/event | client CPU µs/event | peak RSS MB "
        "| ratio to reference | CPU ratio | all delivered |"
    )


def _row(s: dict[str, Any], case: dict[str, Any]) -> str:
    med = case["median"]
    spread = f"{case['ratio']:.2f} ({case['ratio_min']:.2f}-{case['ratio_max']:.2f})"
    rss = f"{med.get('peak_rss_kb', 0) / 1024:.1f}"
    if s["metric"] == "kb_per_event":
        kb, us = f"{med['kb_per_event']:.3f}", f"{med['us_per_event']:.1f}"
        kept = case["rounds"][-1].get("kept", case["events"])
        per_kept = med.get("kb_per_kept_event", med["kb_per_event"])
        return f"| {case['label']} | {kb} | {kept:,} | {per_kept:.3f} | {us} | {rss} | {spread} |"
    if s["metric"] == "import_ms":
        return f"| {case['label']} | {med['import_ms']:.1f} | {spread} |"
    delivered = (
        "yes" if case["all_delivered"] and not case["failed"] else f"NO (failed {case['failed']})"
    )
    return (
        f"| {case['label']} | {med['events_per_s']:,.0f} | {med['us_per_event']:.1f} | "
        f"{med['cpu_us_per_event']:.1f} | {rss} | {spread} | {case['cpu_ratio']:.2f} | "
        f"{delivered} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few events and 1 round: a smoke test")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 1)")
    parser.add_argument(
        "--events", type=int, default=None, help="events per case (default: per scenario)"
    )
    parser.add_argument(
        "--scenarios", type=lambda v: v.split(","), default=None, help="comma-separated names"
    )
    parser.add_argument(
        "--without-upstream", action="store_true", help="leave snowplow-tracker 1.1.0 out"
    )
    parser.add_argument(
        "--unpinned",
        action="store_true",
        help="do not pin the cases to one core (the sink stays pinned): closer to production, "
        "where a tracker's threads may use every core, and noisier",
    )
    parser.add_argument("--out", type=Path, default=None, help="results path without suffix")
    parser.add_argument(
        "--before", default=None, help="also run each of ours' cases on the code at this git rev"
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    known = {s.name for s in SCENARIOS}
    if args.scenarios and set(args.scenarios) - known:
        parser.error(
            f"unknown scenarios {sorted(set(args.scenarios) - known)}; known: {sorted(known)}"
        )
    out = args.out or RESULTS / ("quick" if args.quick else "results")
    report = run(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
