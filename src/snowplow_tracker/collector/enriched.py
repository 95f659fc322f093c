"""Snowplow-shaped enriched events: the 131 atomic fields, and the Analytics SDK's lossy JSON.

This is what a good event looks like after Enrich, as far as a local collector can
tell without the IP lookups, user-agent parsing and other enrichments (their
fields stay null). Built on demand, never at ingest.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

from .._version import __version__
from .validate import EVENT_TYPES, SNOWPLOW, Event

COLLECTOR_VERSION = f"snowplow-tracker-collector-{__version__}"
CONTEXTS_SCHEMA = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
UNSTRUCT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"

FIELDS = [
    "app_id",
    "platform",
    "etl_tstamp",
    "collector_tstamp",
    "dvce_created_tstamp",
    "event",
    "event_id",
    "txn_id",
    "name_tracker",
    "v_tracker",
    "v_collector",
    "v_etl",
    "user_id",
    "user_ipaddress",
    "user_fingerprint",
    "domain_userid",
    "domain_sessionidx",
    "network_userid",
    "geo_country",
    "geo_region",
    "geo_city",
    "geo_zipcode",
    "geo_latitude",
    "geo_longitude",
    "geo_region_name",
    "ip_isp",
    "ip_organization",
    "ip_domain",
    "ip_netspeed",
    "page_url",
    "page_title",
    "page_referrer",
    "page_urlscheme",
    "page_urlhost",
    "page_urlport",
    "page_urlpath",
    "page_urlquery",
    "page_urlfragment",
    "refr_urlscheme",
    "refr_urlhost",
    "refr_urlport",
    "refr_urlpath",
    "refr_urlquery",
    "refr_urlfragment",
    "refr_medium",
    "refr_source",
    "refr_term",
    "mkt_medium",
    "mkt_source",
    "mkt_term",
    "mkt_content",
    "mkt_campaign",
    "contexts",
    "se_category",
    "se_action",
    "se_label",
    "se_property",
    "se_value",
    "unstruct_event",
    "tr_orderid",
    "tr_affiliation",
    "tr_total",
    "tr_tax",
    "tr_shipping",
    "tr_city",
    "tr_state",
    "tr_country",
    "ti_orderid",
    "ti_sku",
    "ti_name",
    "ti_category",
    "ti_price",
    "ti_quantity",
    "pp_xoffset_min",
    "pp_xoffset_max",
    "pp_yoffset_min",
    "pp_yoffset_max",
    "useragent",
    "br_name",
    "br_family",
    "br_version",
    "br_type",
    "br_renderengine",
    "br_lang",
    "br_features_pdf",
    "br_features_flash",
    "br_features_java",
    "br_features_director",
    "br_features_quicktime",
    "br_features_realplayer",
    "br_features_windowsmedia",
    "br_features_gears",
    "br_features_silverlight",
    "br_cookies",
    "br_colordepth",
    "br_viewwidth",
    "br_viewheight",
    "os_name",
    "os_family",
    "os_manufacturer",
    "os_timezone",
    "dvce_type",
    "dvce_ismobile",
    "dvce_screenwidth",
    "dvce_screenheight",
    "doc_charset",
    "doc_width",
    "doc_height",
    "tr_currency",
    "tr_total_base",
    "tr_tax_base",
    "tr_shipping_base",
    "ti_currency",
    "ti_price_base",
    "base_currency",
    "geo_timezone",
    "mkt_clickid",
    "mkt_network",
    "etl_tags",
    "dvce_sent_tstamp",
    "refr_domain_userid",
    "refr_dvce_tstamp",
    "derived_contexts",
    "domain_sessionid",
    "derived_tstamp",
    "event_vendor",
    "event_name",
    "event_format",
    "event_version",
    "event_fingerprint",
    "true_tstamp",
]
assert len(FIELDS) == 131


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _float(value: str) -> float | None:
    try:
        return None if value == "null" else float(value)
    except ValueError:
        return None


def _flag(value: str) -> bool | None:
    return {"1": True, "0": False}.get(value)


def _text(value: str) -> str:
    # Enrich makes text TSV-safe: tabs become four spaces, control characters go.
    if value.isprintable():
        return value
    return "".join(c for c in value.replace("\t", "    ") if c.isprintable() or c == " ")


_SIMPLE: dict[str, tuple[str, Callable[[str], Any]]] = {
    "aid": ("app_id", _text),
    "p": ("platform", _text),
    "eid": ("event_id", _text),
    "tid": ("txn_id", _int),
    "tna": ("name_tracker", _text),
    "tv": ("v_tracker", _text),
    "uid": ("user_id", _text),
    "fp": ("user_fingerprint", _text),
    "duid": ("domain_userid", _text),
    "vid": ("domain_sessionidx", _int),
    "url": ("page_url", _text),
    "page": ("page_title", _text),
    "refr": ("page_referrer", _text),
    "se_ca": ("se_category", _text),
    "se_ac": ("se_action", _text),
    "se_la": ("se_label", _text),
    "se_pr": ("se_property", _text),
    "se_va": ("se_value", _float),
    "ev_ca": ("se_category", _text),
    "ev_ac": ("se_action", _text),
    "ev_la": ("se_label", _text),
    "ev_pr": ("se_property", _text),
    "ev_va": ("se_value", _float),
    "tr_id": ("tr_orderid", _text),
    "tr_af": ("tr_affiliation", _text),
    "tr_tt": ("tr_total", _float),
    "tr_tx": ("tr_tax", _float),
    "tr_sh": ("tr_shipping", _float),
    "tr_ci": ("tr_city", _text),
    "tr_st": ("tr_state", _text),
    "tr_co": ("tr_country", _text),
    "tr_cu": ("tr_currency", _text),
    "ti_id": ("ti_orderid", _text),
    "ti_sk": ("ti_sku", _text),
    "ti_nm": ("ti_name", _text),
    "ti_na": ("ti_name", _text),
    "ti_ca": ("ti_category", _text),
    "ti_pr": ("ti_price", _float),
    "ti_qu": ("ti_quantity", _int),
    "ti_cu": ("ti_currency", _text),
    "pp_mix": ("pp_xoffset_min", _int),
    "pp_max": ("pp_xoffset_max", _int),
    "pp_miy": ("pp_yoffset_min", _int),
    "pp_may": ("pp_yoffset_max", _int),
    "lang": ("br_lang", _text),
    "cookie": ("br_cookies", _flag),
    "cd": ("br_colordepth", _text),
    "tz": ("os_timezone", _text),
    "cs": ("doc_charset", _text),
    "sid": ("domain_sessionid", _text),
    "f_pdf": ("br_features_pdf", _flag),
    "f_fla": ("br_features_flash", _flag),
    "f_java": ("br_features_java", _flag),
    "f_dir": ("br_features_director", _flag),
    "f_qt": ("br_features_quicktime", _flag),
    "f_realp": ("br_features_realplayer", _flag),
    "f_wma": ("br_features_windowsmedia", _flag),
    "f_gears": ("br_features_gears", _flag),
    "f_ag": ("br_features_silverlight", _flag),
}
_DIMENSIONS = {
    "res": ("dvce_screenwidth", "dvce_screenheight"),
    "vp": ("br_viewwidth", "br_viewheight"),
    "ds": ("doc_width", "doc_height"),
}
_TIMESTAMPS = {"dtm": "dvce_created_tstamp", "stm": "dvce_sent_tstamp", "ttm": "true_tstamp"}


def iso_ms(ms: float) -> str:
    """``2021-08-29T12:01:05.787Z``, as the Analytics SDKs render timestamps."""
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def enrich(event: Event) -> dict[str, Any]:
    """The event's 131 atomic fields; contexts and unstruct_event as nested self-describing JSON."""
    raw = event.raw
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    for name, value in raw.items():
        simple = _SIMPLE.get(name)
        if simple is not None:
            out[simple[0]] = simple[1](value)
        elif name in _DIMENSIONS:
            width, _, height = value.partition("x")
            out[_DIMENSIONS[name][0]], out[_DIMENSIONS[name][1]] = _int(width), _int(height)
    out["event"] = EVENT_TYPES.get(raw.get("e", ""))
    _add_context(event, out)
    _add_timestamps(event, out)
    _add_urls(out)
    _add_schema(event, out)
    if event.contexts:
        out["contexts"] = {"schema": CONTEXTS_SCHEMA, "data": event.contexts}
    if event.unstruct_event is not None:
        out["unstruct_event"] = {"schema": UNSTRUCT_SCHEMA, "data": event.unstruct_event}
    return out


def _add_context(event: Event, out: dict[str, Any]) -> None:
    payload, raw = event.payload, event.raw
    out["v_collector"] = _text(raw["cv"]) if "cv" in raw else COLLECTOR_VERSION
    out["v_etl"] = COLLECTOR_VERSION
    ip = raw.get("ip") or (payload.ip if payload else None)
    out["user_ipaddress"] = ip.split(",")[0].strip() if ip else None
    out["useragent"] = raw.get("ua") or (payload.useragent if payload else None)
    out["network_userid"] = (
        raw.get("tnuid") or raw.get("nuid") or (payload.network_userid if payload else None)
    )


def _add_timestamps(event: Event, out: dict[str, Any]) -> None:
    raw = event.raw
    collector_ms = int((event.payload.timestamp if event.payload else 0) * 1000)
    out["collector_tstamp"] = out["etl_tstamp"] = iso_ms(collector_ms)
    parsed = {}
    for name, field in _TIMESTAMPS.items():
        ms = _int(raw[name]) if name in raw else None
        if ms is not None:
            parsed[name] = ms
            out[field] = _safe_iso(ms)
    derived: float = collector_ms
    if "ttm" in parsed:
        derived = parsed["ttm"]
    elif "dtm" in parsed and "stm" in parsed and parsed["dtm"] < parsed["stm"]:
        derived = collector_ms - (parsed["stm"] - parsed["dtm"])
    out["derived_tstamp"] = _safe_iso(derived)


def _safe_iso(ms: float) -> str | None:
    try:
        return iso_ms(ms)
    except (OverflowError, OSError, ValueError):
        return None


def _add_urls(out: dict[str, Any]) -> None:
    for source, prefix in (("page_url", "page_url"), ("page_referrer", "refr_url")):
        url = out.get(source)
        if not url:
            continue
        try:
            parts = urlsplit(url)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            continue
        out[f"{prefix}scheme"] = parts.scheme or None
        out[f"{prefix}host"] = parts.hostname
        out[f"{prefix}port"] = port
        out[f"{prefix}path"] = parts.path or None
        out[f"{prefix}query"] = parts.query or None
        out[f"{prefix}fragment"] = parts.fragment or None


_SCHEMAS = {
    "page_view": f"{SNOWPLOW}/page_view/jsonschema/1-0-0",
    "page_ping": f"{SNOWPLOW}/page_ping/jsonschema/1-0-0",
    "struct": "com.google.analytics/event/jsonschema/1-0-0",
    "transaction": f"{SNOWPLOW}/transaction/jsonschema/1-0-0",
    "transaction_item": f"{SNOWPLOW}/transaction_item/jsonschema/1-0-0",
}


def event_schema(event: Event) -> str | None:
    """``event_vendor/name/format/version`` as an ``iglu:`` URI, as SchemaEnrichment sets it."""
    if event.event_type == "unstruct":
        return event.event_schema
    path = _SCHEMAS.get(event.event_type or "")
    return f"iglu:{path}" if path else None


def _add_schema(event: Event, out: dict[str, Any]) -> None:
    uri = event_schema(event)
    if uri is None or not uri.startswith("iglu:"):
        return
    parts = uri[5:].split("/")
    if len(parts) == 4:
        out["event_vendor"], out["event_name"], out["event_format"], out["event_version"] = parts


_NAME_BREAK = re.compile(r"([^A-Z_])([A-Z])")


def lossy_key(prefix: str, uri: str) -> str | None:
    """``contexts_com_acme_my_entity_1`` for ``iglu:com.acme/myEntity/jsonschema/1-0-0``."""
    parts = uri[5:].split("/") if uri.startswith("iglu:") else []
    if len(parts) != 4:
        return None
    vendor = parts[0].replace(".", "_").replace("-", "_").lower()
    name = _NAME_BREAK.sub(r"\1_\2", parts[1]).replace("-", "_").lower()
    return f"{prefix}_{vendor}_{name}_{parts[3].split('-')[0]}"


def lossy(event: Event) -> dict[str, Any]:
    """The Analytics SDK's lossy JSON: flat atomic fields, entities under shredded names."""
    out = {k: v for k, v in enrich(event).items() if v is not None}
    out.pop("contexts", None)
    out.pop("unstruct_event", None)
    for entity in event.contexts:
        key = lossy_key("contexts", str(entity.get("schema")))
        if key is not None:
            out.setdefault(key, []).append(entity.get("data"))
    if event.unstruct_event is not None:
        key = lossy_key("unstruct_event", str(event.unstruct_event.get("schema")))
        if key is not None:
            out[key] = event.unstruct_event.get("data")
    return out
