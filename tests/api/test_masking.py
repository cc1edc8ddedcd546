"""What support sees: masked account ids and IPs, no raw evidence fields."""

from __future__ import annotations

from secmon.api.masking import key_numbers, mask_account, mask_obj, mask_text


def test_account_ids_keep_just_enough_to_match_a_caller() -> None:
    assert mask_account("acct-100234") == "ac…34"
    assert mask_account("u-123") == "u…3"
    assert mask_account("abc") == "…"
    assert mask_account(None) is None


def test_ips_and_known_accounts_are_masked_in_text() -> None:
    text = "acct-100234 failed from 203.0.113.7 and 2001:db8::1 at 10:00:00, see acct-100234"
    out = mask_text(text, ["acct-100234"])
    assert out == "ac…34 failed from 203.0.113.x and 2001:db8:… at 10:00:00, see ac…34"
    assert mask_text("version 1.2.3.4.5 and 999.1.1.1") == "version 1.2.3.4.5 and 999.1.1.1"  # not IPs


def test_objects_are_masked_by_key_and_evidence_is_dropped() -> None:
    detail = {"account_id": "acct-100234", "ip": "198.51.100.20", "summary": "from 198.51.100.20",
              "evidence": ["ev-1"], "token_id": "t", "nested": [{"to_account": "acct-999999"}], "n": 3}  # fmt: skip
    assert mask_obj(detail, ["acct-100234"]) == {
        "account_id": "ac…34", "ip": "198.51.100.x", "summary": "from 198.51.100.x", "nested": [{"to_account": "ac…99"}],
        "n": 3,
    }  # fmt: skip


def test_key_numbers_are_the_numeric_top_level_values() -> None:
    assert key_numbers({"failures": 12, "score": 0.123456, "ok": True, "ip": "1.2.3.4", "accounts": 3,
                        "nested": {"x": 1}}) == {"failures": 12, "score": 0.1235}  # fmt: skip
    assert len(key_numbers({f"k{i}": i for i in range(20)})) == 8
