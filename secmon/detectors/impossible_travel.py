"""``impossible_travel``: two consecutive logins of one account too far apart for the time
between them (Elastic's rule: at least 500 km and 800 km/h, about airliner speed).

Only successful logins count (a failure proves nothing about who holds the account) and
only those with coordinates: a login without ``lat``/``lon`` is skipped and the previous
located login stays the reference, which only lengthens the interval (fewer alerts, never a
spurious one).  A traveller flying across the world over two days is well under the speed.

Findings are per episode: further impossible hops within ``cooldown_ms`` update the open
finding only when its severity rises (an attacker and the owner taking turns would
otherwise alert on every login).
"""

from __future__ import annotations

from sys import intern

from secmon.contract import LoginSucceeded, Subject
from secmon.detectors.base import Context, Detector, DetectorConfig, KeyState
from secmon.detectors.common import HOUR_MS, MINUTE_MS, SEVERITY_NAMES, haversine_km, mask_ip

#: Half the Earth's circumference: no two points are further apart.
_MAX_KM = 20_038.0


class ImpossibleTravelConfig(DetectorConfig, frozen=True, kw_only=True):
    #: Closer logins are never flagged (IP geolocation is often off by a few hundred km).
    min_distance_km: float = 500.0
    #: Implied speed at or above which the trip is impossible (a long-haul airliner: ~900).
    min_speed_kmh: float = 800.0
    #: Implied speed at or above which the finding is high severity.
    high_speed_kmh: float = 5_000.0
    #: Logins closer in time than this count as this far apart (clock skew between services).
    time_floor_ms: int = MINUTE_MS
    #: Within this long after a finding, further hops update it only if severity rises.
    cooldown_ms: int = 6 * HOUR_MS
    #: A previous login older than the longest possible flight can never be "impossible".
    state_ttl_ms: int = 30 * HOUR_MS

    def __post_init__(self) -> None:
        if self.min_speed_kmh <= 0 or self.time_floor_ms <= 0:
            raise ValueError("min_speed_kmh and time_floor_ms must be positive")


class LastLogin(KeyState, array_like=True):
    ts: int = 0
    lat: float = 0.0
    lon: float = 0.0
    country: str = ""
    city: str = ""
    eid: str = ""
    f_key: str = ""  # dedup key of the open finding
    f_rev: int = 0
    f_sev: int = 0
    f_at: int = 0
    f_first: int = 0  # first_seen of the open finding (0 in checkpoints before 2026-11-27)


class ImpossibleTravel(Detector[ImpossibleTravelConfig, LastLogin]):
    name = "impossible_travel"
    kinds = ("impossible_travel",)
    event_types = frozenset({"login.succeeded"})
    Config = ImpossibleTravelConfig
    State = LastLogin

    def __init__(self, config: ImpossibleTravelConfig) -> None:
        super().__init__(config)
        # Beyond this interval even the longest trip is under the speed: skip the trigonometry.
        self._horizon_ms = int(_MAX_KM / config.min_speed_kmh * HOUR_MS)
        # Within this many degrees of latitude and longitude two points are closer than the
        # minimum distance (a degree is at most 111.2 km either way): skip it too.
        self._near_deg = config.min_distance_km / 111.2 / 1.4143

    def on_event(self, e: LoginSucceeded, ctx: Context) -> None:
        g = e.geo
        if g is None:
            return
        lat, lon = g.lat, g.lon
        if lat is None or lon is None:
            return
        key, ts = e.account_id, e.ts
        st = self.state.get(key)
        if st is None:
            self.state.put(key, LastLogin(ts=ts, lat=lat, lon=lon, country=intern(g.country),
                                          city=intern(g.city or ""), eid=e.event_id), ts)
            return
        dt = ts - st.ts if ts >= st.ts else st.ts - ts
        near = self._near_deg
        if dt < self._horizon_ms and (abs(lat - st.lat) >= near or abs(lon - st.lon) >= near):
            km = haversine_km(st.lat, st.lon, lat, lon)
            c = self.config
            if km >= c.min_distance_km:
                kmh = km / (max(dt, c.time_floor_ms) / HOUR_MS)
                if kmh >= c.min_speed_kmh:
                    self._report(st, e, km, kmh, dt, ctx)
        st.ts = ts
        st.lat = lat
        st.lon = lon
        st.eid = e.event_id
        city = g.city or ""
        if st.country != g.country or st.city != city:
            st.country = intern(g.country)  # one string per place, not one per account
            st.city = intern(city)
        self.state.put(key, st, ts)

    def _report(self, st: LastLogin, e: LoginSucceeded, km: float, kmh: float, dt: int, ctx: Context) -> None:
        c = self.config
        rank = 3 if kmh >= c.high_speed_kmh else 2
        if st.f_key and e.ts - st.f_at <= c.cooldown_ms:
            if rank <= st.f_sev:
                return
            st.f_rev += 1
        else:
            st.f_key, st.f_rev, st.f_first = f"{e.account_id}|{st.eid}", 0, min(st.ts, e.ts)
        st.f_sev, st.f_at = rank, e.ts
        g = e.geo
        assert g is not None
        here = f"{g.city + ', ' if g.city else ''}{g.country}"
        there = f"{st.city + ', ' if st.city else ''}{st.country}"
        hours = dt / HOUR_MS
        ctx.emit(
            kind="impossible_travel",
            severity=SEVERITY_NAMES[rank],
            dedup_key=st.f_key,
            account_id=e.account_id,
            # An escalation keeps the episode's start: its first hop came first.
            first_seen_ms=min(st.f_first or st.ts, st.ts, e.ts),
            last_seen_ms=max(st.ts, e.ts),
            evidence=[st.eid, e.event_id],
            summary=(
                f"Logins from {there} and {here} {_duration(dt)} apart ({km:,.0f} km, {kmh:,.0f} km/h): "
                "faster than any flight."
            ),
            explanation={
                "distance_km": round(km, 1),
                "hours_between": round(hours, 3),
                "speed_kmh": round(kmh, 1),
                "min_distance_km": c.min_distance_km,
                "min_speed_kmh": c.min_speed_kmh,
                "from": {"country": st.country, "city": st.city or None},
                "to": {"country": g.country, "city": g.city},
                "ip": mask_ip(e.ip),
            },
            subject=Subject(ip=e.ip, asn=e.asn) if e.ip else None,
            revision=st.f_rev,
        )


def _duration(ms: int) -> str:
    if ms < HOUR_MS:
        return f"{max(1, round(ms / MINUTE_MS))} min"
    return f"{ms / HOUR_MS:.1f} h"
