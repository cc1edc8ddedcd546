"""Pure helpers of ``secmon.detectors.common`` added for the auth detectors."""

from __future__ import annotations

import ipaddress
import random

from secmon.detectors.common import (
    count_by,
    device_print,
    settle,
    subnet_of,
    subnet_of_valid,
    tier_rank,
    update_due,
)


def test_tier_rank_counts_the_tiers_reached_and_caps_at_critical() -> None:
    assert [tier_rank(n, (10, 50, 500)) for n in (5, 10, 49, 50, 500, 10**6)] == [1, 2, 2, 3, 4, 4]
    assert tier_rank(3, (), base=2) == 2


def test_update_due_on_escalation_or_growth_after_the_cooldown() -> None:
    assert update_due(2, 3, last_emit_ms=0, now_ms=1, cooldown_ms=100, grew=False)
    assert not update_due(2, 2, last_emit_ms=0, now_ms=50, cooldown_ms=100, grew=True)
    assert update_due(2, 2, last_emit_ms=0, now_ms=100, cooldown_ms=100, grew=True)
    assert not update_due(2, 2, last_emit_ms=0, now_ms=10**9, cooldown_ms=100, grew=False)


def test_count_by_and_settle_keep_a_bounded_tally() -> None:
    keys: list[int] = []
    counts: list[int] = []
    for k in (1, 1, 2, 3, 1, 4, 5):
        count_by(keys, counts, k, cap=3)
    assert (keys, counts) == ([1, 4, 5], [3, 1, 1])
    assert settle(keys, counts, 1) == 3 and settle(keys, counts, 9) == 0
    assert (keys, counts) == ([4, 5], [1, 1])


def test_device_print_falls_back_on_the_network() -> None:
    assert device_print("phone-1", "192.0.2.1") == device_print("phone-1", None) != 0
    assert device_print(None, "192.0.2.1") == device_print(None, "192.0.2.200")
    assert device_print(None, "192.0.3.1") != device_print(None, "192.0.2.1")
    assert device_print(None, None) == 0


def test_subnet_of_matches_the_ipaddress_module() -> None:
    """The fast path (inet_pton) gives the text ``ipaddress`` would, and None for non-IPs."""
    rnd = random.Random(5)
    samples = ["::", "::1", "2001:0:0:1::5", "fe80::1%eth0", "::ffff:1.2.3.4", "1.2.3", "01.2.3.4",
               "256.1.1.1", "x", ""]
    masks = [2**128 - 1, (2**64 - 1) << 64, 0xFFFF << 112]
    samples += [str(ipaddress.IPv6Address(rnd.getrandbits(128) & rnd.choice(masks))) for _ in range(2000)]
    samples += [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(2000)]
    for text in samples:
        try:
            addr = ipaddress.ip_address(text)
            expected: str | None = str(ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 64}", strict=False))
        except ValueError:
            expected = None
        assert subnet_of(text) == expected, text


def test_subnet_of_valid_agrees_with_subnet_of_on_addresses_the_decoder_accepts() -> None:
    """Forwarded and event addresses were checked by the decoder: the unchecked cut must give
    the same network for every address that passes that check."""
    from secmon.contract import _valid_ip

    rnd = random.Random(6)
    samples = ["::", "::1", "fe80::1%eth0", "::ffff:1.2.3.4", "0.0.0.0", "255.255.255.255", "10.1.2.3"]
    samples += [str(ipaddress.IPv6Address(rnd.getrandbits(128))) for _ in range(500)]
    samples += [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(500)]
    for text in samples:
        assert _valid_ip(text), text
        assert subnet_of_valid(text) == subnet_of(text), text
