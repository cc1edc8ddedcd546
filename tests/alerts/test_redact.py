"""Secrets and personal detail stay out of what the action layer writes and sends."""

from __future__ import annotations

from secmon.alerts.redact import REDACTED, device_label, mask_ip, plain, scrub, scrub_obj

URI = "otpauth://totp/Wallet:alice?secret=JBSWY3DPEHPK3PXP&issuer=Wallet"


def test_scrub_removes_otpauth_uris_and_secret_parameters() -> None:
    text = f"enrolled {URI} and later secret=ABCDEF234567&digits=6"
    out = scrub(text)
    assert "JBSWY3DPEHPK3PXP" not in out and "ABCDEF234567" not in out
    assert "otpauth://" + REDACTED in out and "digits=6" in out


def test_scrub_obj_walks_nested_values() -> None:
    doc = {"a": [URI, {"b": "password=hunter2"}], "n": 3}
    out = scrub_obj(doc)
    assert "JBSWY3DPEHPK3PXP" not in str(out) and "hunter2" not in str(out) and out["n"] == 3


def test_plain_makes_one_short_line_without_markup_or_controls() -> None:
    out = plain("<b>bold</b>\r\nX-Header: 1\u202eevil\x00", 40)
    assert "<" not in out and ">" not in out and "\n" not in out and "\u202e" not in out and "\x00" not in out
    assert len(plain("x" * 500, 50)) == 50


def test_device_label_summarises_known_browsers_and_cleans_the_rest() -> None:
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    assert device_label(ua) == "Chrome on Windows"
    odd = device_label("<script>alert(1)</script>" + "A" * 200)
    assert odd is not None and "<" not in odd and len(odd) <= 60
    assert device_label(None) is None


def test_mask_ip_hides_the_host_part() -> None:
    assert mask_ip("203.0.113.77") == "203.0.113.x"
    assert mask_ip("2001:db8:1:2:3:4:5:6") is not None and "3:4:5:6" not in mask_ip("2001:db8:1:2:3:4:5:6")  # type: ignore[operator]
    assert mask_ip("not an ip") is None
