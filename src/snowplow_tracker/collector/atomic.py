"""The atomic fields of an event, checked as Enrich does: each one's format
(``schema_violations`` against ``atomic``), its presence where the tracker protocol
requires it, and its length. Per event, and for a whole batch at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import repeat

from .model import ATOMIC, EVENT_TYPES, PLATFORMS, SCHEMA_VIOLATIONS, Event

_INT32 = 2**31
_MIN_MS, _MAX_MS = -62_167_219_200_000, 253_402_300_799_999  # years 0 to 9999


def _atomic_error(event: Event, name: str, message: str, keyword: str | None = None) -> None:
    value = event.raw.get(name)
    shown = "" if value is None else f": {value[:200]!r}"
    event.fail(
        SCHEMA_VIOLATIONS,
        f"{name}: {message}{shown}",
        {
            "schemaKey": ATOMIC,
            "error": {
                "error": "ValidationError",
                "dataReports": [
                    {
                        "message": f"{message}{shown}",
                        "path": name,
                        "keyword": keyword,
                        "targets": [],
                    }
                ],
            },
        },
    )


def _is_int(value: str, low: int = -_INT32, high: int = _INT32 - 1) -> bool:
    digits = value[1:] if value[:1] in ("-", "+") else value
    # isascii: int() would also take other scripts' digits, spaces and underscores;
    # the length test: int() refuses more than 4300 digits, and every bound has 19 or fewer.
    return (
        digits.isascii()
        and digits.isdigit()
        and len(digits.lstrip("0")) <= 19
        and low <= int(value) <= high
    )


def _is_ms(value: str) -> bool:
    return _is_int(value, _MIN_MS, _MAX_MS)


_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _is_decimal(value: str) -> bool:
    # What Java's BigDecimal parses; "null" is how trackers send no value.
    return value == "null" or _DECIMAL.fullmatch(value) is not None


def _is_dimensions(value: str) -> bool:
    width, sep, height = value.partition("x")
    return bool(sep) and width.isdigit() and height.isdigit() and _is_int(width) and _is_int(height)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _is_uuid(value: str) -> bool:
    # Enrich wants a UUID in its canonical lowercase form.
    return _UUID.fullmatch(value) is not None


def _is_flag(value: str) -> bool:
    return value in ("0", "1")


_PARSERS: dict[str, tuple[Callable[[str], bool], str]] = {
    "eid": (_is_uuid, "Not a valid UUID"),
    "sid": (_is_uuid, "Not a valid UUID"),
    "dtm": (_is_ms, "Not in the expected format: ms since epoch"),
    "stm": (_is_ms, "Not in the expected format: ms since epoch"),
    "ttm": (_is_ms, "Not in the expected format: ms since epoch"),
    "vid": (_is_int, "Not a valid integer"),
    "tid": (_is_int, "Not a valid integer"),
    "ti_qu": (_is_int, "Not a valid integer"),
    "pp_mix": (_is_int, "Not a valid integer"),
    "pp_max": (_is_int, "Not a valid integer"),
    "pp_miy": (_is_int, "Not a valid integer"),
    "pp_may": (_is_int, "Not a valid integer"),
    "se_va": (_is_decimal, "Not a valid decimal"),
    "ev_va": (_is_decimal, "Not a valid decimal"),
    "tr_tt": (_is_decimal, "Not a valid decimal"),
    "tr_tx": (_is_decimal, "Not a valid decimal"),
    "tr_sh": (_is_decimal, "Not a valid decimal"),
    "ti_pr": (_is_decimal, "Not a valid decimal"),
    "res": (_is_dimensions, "Does not conform to regex (\\d+)x(\\d+)"),
    "vp": (_is_dimensions, "Does not conform to regex (\\d+)x(\\d+)"),
    "ds": (_is_dimensions, "Does not conform to regex (\\d+)x(\\d+)"),
    "cookie": (_is_flag, "Cannot be converted to Boolean: expected 1 or 0"),
    **{
        name: (_is_flag, "Cannot be converted to Boolean: expected 1 or 0")
        for name in (
            "f_pdf",
            "f_fla",
            "f_java",
            "f_dir",
            "f_qt",
            "f_realp",
            "f_wma",
            "f_gears",
            "f_ag",
        )
    },
}


def _check_atomic(event: Event) -> list[str] | None:
    """Report parse errors; return the fields over their length limit, for phase 3."""
    raw = event.raw
    if raw.get("e") not in EVENT_TYPES or raw.get("p") not in PLATFORMS or not raw.get("tv"):
        _check_required(event)
    failing: list[str] | None = None
    too_long: list[str] | None = None
    rules = _RULES
    for name, value in raw.items():  # one pass, no allocation for a good event
        rule = rules.get(name)
        if rule is not None:
            if rule[0] is not None and not rule[0](value):
                failing = [*(failing or ()), name]
            if len(value) > rule[2]:
                too_long = [*(too_long or ()), name]
    if failing:
        for name in sorted(failing):
            _atomic_error(event, name, _PARSERS[name][1])
    return too_long


def _check_required(event: Event) -> None:
    raw = event.raw
    for name in ("e", "p", "tv"):
        if not raw.get(name):
            _atomic_error(event, name, "Field is required by the tracker protocol")
    kind = raw.get("e")
    if kind and kind not in EVENT_TYPES:
        _atomic_error(event, "e", "Not a valid event type")
    platform = raw.get("p")
    if platform and platform not in PLATFORMS:
        _atomic_error(event, "p", "Not a valid platform")


# Enrich's default validation.atomicFieldsLimits, by tracker parameter.
FIELD_LIMITS: dict[str, int] = {
    "e": 128,
    "p": 255,
    "tv": 100,
    "tna": 128,
    "aid": 255,
    "eid": 36,
    "tz": 255,
    "uid": 255,
    "duid": 128,
    "sid": 128,
    "nuid": 128,
    "tnuid": 128,
    "ip": 128,
    "ua": 1000,
    "lang": 255,
    "cv": 100,
    "url": 10000,
    "page": 2000,
    "refr": 10000,
    "cd": 12,
    "cs": 128,
    "fp": 128,
    "se_ca": 1000,
    "se_ac": 1000,
    "se_la": 4096,
    "se_pr": 1000,
    "tr_id": 255,
    "tr_af": 255,
    "tr_ci": 255,
    "tr_st": 255,
    "tr_co": 255,
    "tr_cu": 3,
    "ti_id": 255,
    "ti_sk": 255,
    "ti_nm": 255,
    "ti_na": 255,
    "ti_ca": 255,
    "ti_cu": 3,
}


_NO_LIMIT = 1 << 62
_RULES: dict[str, tuple[Callable[[str], bool] | None, str, int]] = {
    name: (
        _PARSERS[name][0] if name in _PARSERS else None,
        _PARSERS[name][1] if name in _PARSERS else "",
        FIELD_LIMITS.get(name, _NO_LIMIT),
    )
    for name in _PARSERS.keys() | FIELD_LIMITS.keys()
}


# -- the atomic checks of a whole batch at once ------------------------------------------------
# Each check is as strict as its per-event parser or stricter (bounded digit
# counts, for instance): a batch they pass is one the per-event checks pass.

_BATCH_MIN = 4  # below it, the per-event checks are as cheap
_MS_DIGITS = re.compile(r"[-+]?[0-9]{1,15}")
_INT_DIGITS = re.compile(r"[-+]?[0-9]{1,10}")
_DIMENSIONS = re.compile(r"[0-9]{1,9}x[0-9]{1,9}")  # 9 digits: never above 2**31 - 1
_DECIMAL_OR_NULL = re.compile(f"null|(?:{_DECIMAL.pattern})")


def _all_in_range(
    pattern: re.Pattern[str], low: int, high: int, safe_digits: int
) -> Callable[[list[str]], bool]:
    def check(values: list[str]) -> bool:
        # Unsigned ASCII numbers of at most safe_digits digits are in range: string tests only.
        joined = "".join(values)
        if (
            joined.isascii()
            and joined.isdigit()
            and max(map(len, values)) <= safe_digits
            and min(map(len, values)) > 0
        ):
            return True
        if not all(map(pattern.fullmatch, values)):
            return False
        numbers = list(map(int, values))
        return low <= min(numbers) and max(numbers) <= high

    return check


_HEX = b"0123456789abcdef"


def _all_uuids(values: list[str]) -> bool:
    """``_UUID.fullmatch`` for every value, with string operations over the joined column."""
    count = len(values)
    if max(map(len, values)) != 36 or min(map(len, values)) != 36:
        return False
    joined = "".join(values)  # fixed width: joined[8::36] is every value's 9th character
    if not joined.isascii() or any(joined[at::36] != "-" * count for at in (8, 13, 18, 23)):
        return False
    digits = joined.encode("ascii").translate(None, b"-")  # no other dash anywhere
    return len(digits) == 32 * count and not digits.translate(None, _HEX)


def _all_match(pattern: re.Pattern[str]) -> Callable[[list[str]], bool]:
    return lambda values: all(map(pattern.fullmatch, values))


def _all_flags(values: list[str]) -> bool:
    return set(values) <= {"0", "1"}


_COLUMN_CHECKS: dict[Callable[[str], bool], Callable[[list[str]], bool]] = {
    _is_uuid: _all_uuids,
    _is_ms: _all_in_range(_MS_DIGITS, _MIN_MS, _MAX_MS, 14),  # 10**14 - 1 < _MAX_MS
    _is_int: _all_in_range(_INT_DIGITS, -_INT32, _INT32 - 1, 9),  # 10**9 - 1 < 2**31 - 1
    _is_decimal: _all_match(_DECIMAL_OR_NULL),
    _is_dimensions: _all_match(_DIMENSIONS),
    _is_flag: _all_flags,
}
_COLUMNS: dict[str, tuple[Callable[[list[str]], bool] | None, int]] = {
    name: (_COLUMN_CHECKS[parse] if parse is not None else None, limit)
    for name, (parse, _, limit) in _RULES.items()
}
_EVENT_CODES = frozenset(EVENT_TYPES)


def _atomic_fine(raws: list[dict[str, str]]) -> bool:
    """True only if no event of the batch has an atomic parse error or a field too long."""
    get = dict.get
    if not (
        set(map(get, raws, repeat("e"))) <= _EVENT_CODES
        and set(map(get, raws, repeat("p"))) <= PLATFORMS
        and all(map(get, raws, repeat("tv")))
    ):
        return False
    columns = _COLUMNS
    for name in set().union(*raws):
        column = columns.get(name)
        if column is None:  # a field without a rule: ue_px, cx, ...
            continue
        check, limit = column
        values = [raw[name] for raw in raws if name in raw]
        if check is not None and not check(values):
            return False
        if limit != _NO_LIMIT and max(map(len, values)) > limit:
            return False
    return True


def _check_lengths(event: Event, too_long: list[str]) -> None:
    raw = event.raw
    for name in sorted(too_long):
        limit = FIELD_LIMITS[name]
        report = {"message": f"Field is longer than maximum allowed size {limit}", "path": name,
                  "keyword": "maxLength", "targets": [str(limit)]}  # fmt: skip
        event.fail(
            SCHEMA_VIOLATIONS,
            f"{name}: {len(raw[name])} characters, longer than the maximum {limit}",
            {"schemaKey": ATOMIC, "error": {"error": "ValidationError", "dataReports": [report]}},
        )
