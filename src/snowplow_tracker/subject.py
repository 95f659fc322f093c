"""The subject of events: who or what performs them (user, device, platform)."""

from __future__ import annotations

from typing import Any

from . import contracts
from .contracts import integer, non_empty_string, one_of

#: Every platform code the tracker protocol defines.
SUPPORTED_PLATFORMS = frozenset({"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"})
DEFAULT_PLATFORM = "pc"


def _string(where: str, name: str, value: object) -> None:
    if contracts._enabled:
        non_empty_string(where, name, value)


class Subject:
    """Information about the user or device attached to every event.

    Every setter returns the subject, so calls chain::

        Subject().set_platform("mob").set_user_id("0b08f8be3f1")
    """

    def __init__(self) -> None:
        self.standard_nv_pairs: dict[str, Any] = {"p": DEFAULT_PLATFORM}

    def set_platform(self, value: str) -> Subject:
        """``p``: one of :data:`SUPPORTED_PLATFORMS`."""
        if contracts._enabled:
            one_of("set_platform()", "value", value, SUPPORTED_PLATFORMS)
        self.standard_nv_pairs["p"] = value
        return self

    def set_user_id(self, user_id: str | int) -> Subject:
        """``uid``: the business user id; an int (a database key) is sent as its digits, as
        1.x sends it."""
        if user_id.__class__ is not int:
            _string("set_user_id()", "user_id", user_id)
        self.standard_nv_pairs["uid"] = user_id
        return self

    def set_screen_resolution(self, width: int, height: int) -> Subject:
        """``res``: ``"WIDTHxHEIGHT"``, both positive ints."""
        self.standard_nv_pairs["res"] = _dimensions("set_screen_resolution()", width, height)
        return self

    def set_viewport(self, width: int, height: int) -> Subject:
        """``vp``: ``"WIDTHxHEIGHT"``, both positive ints."""
        self.standard_nv_pairs["vp"] = _dimensions("set_viewport()", width, height)
        return self

    def set_color_depth(self, depth: int) -> Subject:
        """``cd``: colour depth in bits."""
        if contracts._enabled:
            integer("set_color_depth()", "depth", depth, minimum=0)
        self.standard_nv_pairs["cd"] = depth
        return self

    def set_timezone(self, timezone: str) -> Subject:
        """``tz``: an IANA zone name such as ``Europe/London``."""
        _string("set_timezone()", "timezone", timezone)
        self.standard_nv_pairs["tz"] = timezone
        return self

    def set_lang(self, lang: str) -> Subject:
        """``lang``: the user's language."""
        _string("set_lang()", "lang", lang)
        self.standard_nv_pairs["lang"] = lang
        return self

    def set_domain_user_id(self, duid: str) -> Subject:
        """``duid``: the first-party cookie user id."""
        _string("set_domain_user_id()", "duid", duid)
        self.standard_nv_pairs["duid"] = duid
        return self

    def set_ip_address(self, ip: str) -> Subject:
        """``ip``: overrides the IP address the collector sees."""
        _string("set_ip_address()", "ip", ip)
        self.standard_nv_pairs["ip"] = ip
        return self

    def set_useragent(self, ua: str) -> Subject:
        """``ua``: overrides the user agent the collector sees."""
        _string("set_useragent()", "ua", ua)
        self.standard_nv_pairs["ua"] = ua
        return self

    def set_network_user_id(self, nuid: str) -> Subject:
        """``tnuid``: the network user id; it wins over the collector cookie."""
        _string("set_network_user_id()", "nuid", nuid)
        self.standard_nv_pairs["tnuid"] = nuid
        return self

    def set_domain_session_id(self, sid: str) -> Subject:
        """``sid``: the session id; the browser tracker's are UUIDs (any string is sent, as 1.x)."""
        _string("set_domain_session_id()", "sid", sid)
        self.standard_nv_pairs["sid"] = sid
        return self

    def set_domain_session_index(self, vid: int) -> Subject:
        """``vid``: the session index, 1 for the first session."""
        if contracts._enabled:
            integer("set_domain_session_index()", "vid", vid, minimum=1)
        self.standard_nv_pairs["vid"] = vid
        return self

    def combine_subject(self, subject: Subject | None) -> dict[str, Any]:
        """This subject's fields over ``subject``'s (1.x): a per-event subject wins."""
        if subject is None:
            return self.standard_nv_pairs
        return {**subject.standard_nv_pairs, **self.standard_nv_pairs}


def _dimensions(where: str, width: int, height: int) -> str:
    if contracts._enabled:
        integer(where, "width", width, minimum=1)
        integer(where, "height", height, minimum=1)
    return f"{width}x{height}"
