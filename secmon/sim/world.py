"""The simulated world: cities, ISPs (ASN + address blocks), networks, assets, devices.

The world is fixed (its own constant seed, independent of ``--seed``) so that an ASN, a
city or a network means the same thing in every run; the seed only changes who lives where
and what they do.  Numbers are plausible, not authoritative: real ASNs of real carriers and
hosters, city coordinates to ~1 km, per-network credit/completion times as a wallet would
see them (TRON in minutes, Bitcoin in tens of minutes, bank rails somewhere in between).

Every normal deposit is credited well inside :data:`DEPOSIT_SLA_MIN` (the longest normal
credit is :data:`NORMAL_CREDIT_CAP_MIN`); only the labelled ``deposit_delayed`` scenarios
and the "slow but inside the SLA" hard negatives come near it.
"""

from __future__ import annotations

import base64
import math
import random
from dataclasses import dataclass
from typing import Final

#: The wallet's deposit SLA, for every network (labels record it under ``assumptions``).
DEPOSIT_SLA_MIN: Final = 30
#: No normal deposit takes longer than this to be credited.
NORMAL_CREDIT_CAP_MIN: Final = 24.0
#: Platform lockout policy: this many bad passwords within the window lock the account.
LOCK_AFTER_FAILURES: Final = 10
LOCK_WINDOW_MIN: Final = 15
LOCK_DURATION_MIN: Final = 30
#: Background accounts whose 2FA is weak (none, SMS or e-mail only) stay below this balance;
#: labelled weak-posture accounts hold at least :data:`VALUABLE_LABEL_USD`.  Any detector
#: threshold for "valuable" in between separates them.
WEAK_MFA_MAX_USD: Final = 1_000.0
VALUABLE_LABEL_USD: Final = 25_000.0
STRONG_MFA: Final = frozenset({"totp", "webauthn", "push"})


@dataclass(frozen=True, slots=True)
class City:
    name: str
    country: str
    lat: float
    lon: float
    #: UTC offset in hours (fixed; DST ignored: it only shifts habits by an hour).
    utc_offset: float


@dataclass(frozen=True, slots=True)
class Isp:
    """An autonomous system: its number, kind and the /16 blocks its addresses come from."""

    name: str
    asn: int
    country: str
    kind: str  # residential | mobile | hosting
    blocks: tuple[tuple[int, int], ...]
    #: An IPv6 /32 prefix (first two hextets) for the share of sessions that use IPv6.
    v6: str | None = None

    def ip(self, rng: random.Random) -> str:
        a, b = self.blocks[rng.randrange(len(self.blocks))]
        return f"{a}.{b}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def ip_v6(self, rng: random.Random) -> str:
        assert self.v6 is not None
        return f"{self.v6}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"

    def subnet24(self, rng: random.Random) -> str:
        """A /24 of this ISP as ``"a.b.c"`` (for a bot rotating inside one /24)."""
        a, b = self.blocks[rng.randrange(len(self.blocks))]
        return f"{a}.{b}.{rng.randrange(256)}"


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    assets: tuple[str, ...]
    #: Median and cap of the normal deposit credit time, minutes.
    credit_median_min: float
    credit_cap_min: float
    #: Range of the normal withdrawal completion time, minutes.
    complete_min: tuple[float, float]
    fee_usd: tuple[float, float]


CITIES: Final[dict[str, City]] = {
    c.name: c
    for c in (
        City("Shanghai", "CN", 31.230, 121.473, 8),
        City("Beijing", "CN", 39.904, 116.407, 8),
        City("Shenzhen", "CN", 22.543, 114.058, 8),
        City("Hangzhou", "CN", 30.274, 120.155, 8),
        City("Chengdu", "CN", 30.573, 104.066, 8),
        City("Guangzhou", "CN", 23.129, 113.264, 8),
        City("Hong Kong", "HK", 22.320, 114.169, 8),
        City("Taipei", "TW", 25.033, 121.565, 8),
        City("Singapore", "SG", 1.352, 103.820, 8),
        City("Tokyo", "JP", 35.676, 139.650, 9),
        City("Osaka", "JP", 34.694, 135.502, 9),
        City("Seoul", "KR", 37.566, 126.978, 9),
        City("New York", "US", 40.713, -74.006, -5),
        City("San Francisco", "US", 37.775, -122.419, -8),
        City("London", "GB", 51.507, -0.128, 0),
        City("Berlin", "DE", 52.520, 13.405, 1),
        City("Sydney", "AU", -33.869, 151.209, 10),
        # where attacks come from
        City("Lagos", "NG", 6.524, 3.379, 1),
        City("Moscow", "RU", 55.756, 37.617, 3),
        City("Sao Paulo", "BR", -23.551, -46.633, -3),
        City("Hanoi", "VN", 21.028, 105.834, 7),
        City("Ashburn", "US", 39.044, -77.488, -5),
        City("Amsterdam", "NL", 52.368, 4.904, 1),
        City("Frankfurt", "DE", 50.110, 8.682, 1),
        City("Bucharest", "RO", 44.427, 26.103, 2),
    )
}

#: Home countries of the population and their share.
HOME_COUNTRIES: Final = (
    ("CN", 0.45), ("HK", 0.08), ("TW", 0.05), ("SG", 0.05), ("JP", 0.06), ("KR", 0.06),
    ("US", 0.12), ("GB", 0.06), ("DE", 0.04), ("AU", 0.03),
)  # fmt: skip
#: Share of each home country's users whose app locale is zh-CN (the rest use en).
ZH_SHARE: Final = {"CN": 1.0, "HK": 0.7, "TW": 0.7, "SG": 0.4}
_DATACENTRES: Final = frozenset({"Ashburn", "Frankfurt", "Amsterdam", "Bucharest"})
HOME_CITIES: Final = {
    country: [c for c in CITIES.values() if c.country == country and c.name not in _DATACENTRES]
    for country, _ in HOME_COUNTRIES
}
HOSTING_CITIES: Final = {
    14061: "Amsterdam", 16509: "Ashburn", 24940: "Frankfurt", 9009: "Bucharest", 20473: "Ashburn",
}

_ISP_SPECS: Final = (
    ("China Telecom", 4134, "CN", "residential", 3, "240e"),
    ("China Unicom", 4837, "CN", "residential", 3, "2408"),
    ("China Mobile", 9808, "CN", "mobile", 3, "2409"),
    ("HKT", 4760, "HK", "residential", 1, None),
    ("HKBN", 9269, "HK", "residential", 1, None),
    ("China Mobile Hong Kong", 9231, "HK", "mobile", 1, None),
    ("Chunghwa HiNet", 3462, "TW", "residential", 2, None),
    ("Taiwan Mobile", 24158, "TW", "mobile", 1, None),
    ("Singtel", 7473, "SG", "residential", 1, None),
    ("M1", 4773, "SG", "mobile", 1, None),
    ("KDDI", 2516, "JP", "residential", 2, None),
    ("SoftBank", 17676, "JP", "mobile", 2, None),
    ("Korea Telecom", 4766, "KR", "residential", 2, None),
    ("SK Telecom", 9644, "KR", "mobile", 1, None),
    ("Comcast", 7922, "US", "residential", 2, "2601"),
    ("AT&T", 7018, "US", "residential", 2, None),
    ("T-Mobile US", 21928, "US", "mobile", 2, "2607"),
    ("BT", 2856, "GB", "residential", 1, None),
    ("EE", 12576, "GB", "mobile", 1, None),
    ("Deutsche Telekom", 3320, "DE", "residential", 2, "2003"),
    ("Vodafone DE", 3209, "DE", "mobile", 1, None),
    ("Telstra", 1221, "AU", "residential", 1, None),
    ("Optus", 4804, "AU", "mobile", 1, None),
    ("MTN Nigeria", 29465, "NG", "mobile", 1, None),
    ("Rostelecom", 12389, "RU", "residential", 2, None),
    ("MTS", 8359, "RU", "mobile", 1, None),
    ("Claro Brasil", 28573, "BR", "residential", 1, None),
    ("Viettel", 7552, "VN", "mobile", 1, None),
    ("DigitalOcean", 14061, "NL", "hosting", 2, None),
    ("Amazon", 16509, "US", "hosting", 3, None),
    ("Hetzner", 24940, "DE", "hosting", 1, None),
    ("M247", 9009, "RO", "hosting", 1, None),
    ("Vultr", 20473, "US", "hosting", 1, None),
)


def _build_isps() -> dict[int, Isp]:
    """Give every ISP distinct public-looking /16 blocks (fixed, seed-independent)."""
    rng = random.Random("secmon-sim-world-v1")
    reserved = {0, 10, 100, 127, 169, 172, 192, 198, 203, 224}
    firsts = [a for a in range(1, 223) if a not in reserved]
    pool = [(a, b) for a in firsts for b in range(0, 256, 7)]
    rng.shuffle(pool)
    isps: dict[int, Isp] = {}
    for name, asn, country, kind, n, v6 in _ISP_SPECS:
        blocks = tuple(pool.pop() for _ in range(n))
        isps[asn] = Isp(name, asn, country, kind, blocks, v6)
    return isps


ISPS: Final[dict[int, Isp]] = _build_isps()
HOME_ISPS: Final = {
    country: (
        [i for i in ISPS.values() if i.country == country and i.kind == "residential"],
        [i for i in ISPS.values() if i.country == country and i.kind == "mobile"],
    )
    for country, _ in HOME_COUNTRIES
}
HOSTING_ISPS: Final = tuple(i for i in ISPS.values() if i.kind == "hosting")
ATTACK_ISPS: Final = tuple(i for i in ISPS.values() if i.country in {"NG", "RU", "BR", "VN"})
#: The carrier-grade NAT of the hard negative: one public IP shared by many phones.
NAT_ISP: Final = ISPS[9808]

NETWORKS: Final[dict[str, Network]] = {
    n.name: n
    for n in (
        Network("TRON", ("USDT", "TRX"), 1.5, 6.0, (1.0, 6.0), (1.0, 1.0)),
        Network("ETH", ("ETH", "USDT", "USDC"), 3.5, 12.0, (2.0, 12.0), (0.8, 6.0)),
        Network("BTC", ("BTC",), 11.0, NORMAL_CREDIT_CAP_MIN, (10.0, 45.0), (1.5, 9.0)),
        Network("SOL", ("SOL", "USDC"), 0.5, 3.0, (0.5, 3.0), (0.01, 0.01)),
        Network("bank", ("USD",), 7.0, 20.0, (5.0, 60.0), (0.0, 15.0)),
    )
}
#: (asset, network) holdings and how common they are.
HOLDINGS: Final = (
    (("USDT", "TRON"), 0.32), (("USDT", "ETH"), 0.14), (("BTC", "BTC"), 0.2), (("ETH", "ETH"), 0.14),
    (("SOL", "SOL"), 0.05), (("USDC", "SOL"), 0.03), (("USD", "bank"), 0.12),
)  # fmt: skip
PRICES_USD: Final = {"BTC": 65_000.0, "ETH": 3_200.0, "USDT": 1.0, "USDC": 1.0, "TRX": 0.12, "SOL": 150.0, "USD": 1.0}
_DECIMALS: Final = {"BTC": 8, "ETH": 6, "SOL": 4}

MOBILE_UAS: Final = (
    "Wallet/5.2.1 (iPhone; iOS 18.1)", "Wallet/5.2.1 (iPhone; iOS 17.6)", "Wallet/5.2.0 (Android 14; Pixel 8)",
    "Wallet/5.1.9 (Android 13; SM-S911B)", "Wallet/5.2.0 (Android 14; 23127PN0CC)",
    "Wallet/5.2.1 (Android 15; V2309A)",
)  # fmt: skip
WEB_UAS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/140.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/18.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/140.0",
)  # fmt: skip
BOT_UAS: Final = (
    "python-requests/2.32.3", "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/139.0", "okhttp/4.12.0",
    "Wallet/5.2.0 (Android 14; Pixel 8)",
)  # fmt: skip

_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def asset_amount(asset: str, usd: float) -> str:
    """A USD value in units of ``asset``, as the contract's decimal string."""
    return f"{usd / PRICES_USD[asset]:.{_DECIMALS.get(asset, 2)}f}"


def new_address(rng: random.Random, network: str) -> str:
    """A destination address of the network's usual shape."""
    if network == "BTC":
        return "bc1q" + f"{rng.getrandbits(152):038x}"
    if network == "ETH":
        return "0x" + f"{rng.getrandbits(160):040x}"
    if network == "TRON":
        return "T" + "".join(rng.choice(_B58) for _ in range(33))
    if network == "SOL":
        return "".join(rng.choice(_B58) for _ in range(44))
    return "DE" + "".join(str(rng.randrange(10)) for _ in range(20))


def totp_secret(rng: random.Random, bits: int = 160) -> str:
    """A base32 TOTP secret from the seeded RNG (160 bits: RFC 4226's recommended length)."""
    raw = rng.getrandbits(bits).to_bytes(bits // 8, "big")
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def otpauth_uri(account_id: str, secret: str, extra: str = "") -> str:
    return f"otpauth://totp/Wallet:{account_id}?secret={secret}&issuer=Wallet{extra}"


def distance_km(a: City, b: City) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))
