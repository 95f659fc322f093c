"""Self-describing JSON: parsed within a depth limit, its Iglu URI checked, its data
validated against the schema, and every failure put in the shape of Snowplow's bad rows."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from .iglu import Resolver, SchemaKey, SchemaNotFound
from .model import MAX_JSON_DEPTH


def _parse_json(
    name: str, text: str, failure: Callable[..., Exception], *, check_depth: bool = True
) -> Any:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise failure(
            f"{name}: not valid JSON: {str(exc)[:200]}",
            {"field": name, "value": text[:1000], "error": str(exc)[:500]},
        ) from None
    if check_depth and _nesting_bound(text) > MAX_JSON_DEPTH and _too_deep(document):
        raise failure(
            f"{name}: JSON nested deeper than {MAX_JSON_DEPTH} levels",
            {"field": name, "value": text[:1000], "error": "maximum JSON depth exceeded"},
        )
    return document


def _nesting_bound(text: str) -> int:
    # Depth can be no more than the count of brackets: a C-speed test that spares
    # nearly every document the walk below.
    return text.count("{") + text.count("[")


def _too_deep(document: Any) -> bool:
    if not isinstance(document, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _self_describing_schema(name: str, document: Any, failure: Callable[..., Exception]) -> str:
    if not isinstance(document, dict) or "schema" not in document or "data" not in document:
        raise failure(
            f"{name}: not self-describing JSON (needs schema and data)",
            {"json": _clip(document), "error": "INVALID_DATA_PAYLOAD"},
        )
    schema = document["schema"]
    if not _is_iglu_uri(schema):
        raise failure(
            f"{name}: schema {str(schema)[:200]!r} is not an Iglu URI",
            {"json": _clip(document), "error": "INVALID_IGLUURI"},
        ) from None
    return str(schema)


@functools.lru_cache(maxsize=1024)
def _parse_key(uri: str) -> SchemaKey:
    return SchemaKey.parse(uri)


def _is_iglu_uri(uri: Any) -> bool:
    if not isinstance(uri, str):
        return False
    try:
        _parse_key(uri)
    except ValueError:
        return False
    return True


def _clip(document: Any) -> Any:
    # Bad rows keep the offending JSON, but not megabytes of it.
    text = json.dumps(document)
    return document if len(text) <= 2000 else text[:2000]


def _iglu_problem(uri: str, instance: Any, resolver: Resolver) -> tuple[str, dict[str, Any]] | None:
    """None if valid, else (readable error, bad-row IgluError message)."""
    try:
        reports = resolver.reports(uri, instance)
    except SchemaNotFound as exc:
        outcome = "could not be resolved in time" if exc.timed_out else "not found"
        return (
            f"schema {uri} {outcome} (looked in: "
            + ", ".join(h["repository"] for h in exc.lookup_history)
            + ")",
            {
                "schemaKey": uri,
                "error": {"error": "ResolutionError", "lookupHistory": exc.lookup_history},
            },
        )
    if not reports:
        return None
    return (
        "; ".join(str(r) for r in reports[:20]) + f" (against {uri})",
        {
            "schemaKey": uri,
            "error": {"error": "ValidationError", "dataReports": [r.as_json() for r in reports]},
        },
    )
