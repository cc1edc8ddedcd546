"""anomalous_transaction: per-account profiles, statistics + IsolationForest, training and schema checks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import msgspec
import pytest

from secmon.config import ConfigError
from secmon.contract import encode_finding, iso_ms
from secmon.detectors.anomalous_transaction import AnomalousTransaction, AnomalousTransactionConfig
from secmon.detectors.registry import DetectorSpec, resolve
from secmon.detectors.tx_profile import FEATURE_NAMES
from secmon.engine.task import Task
from tests.helpers.events import DAY, HOUR, MINUTE, T0, decoded, ev, replay_findings, write_jsonl


def spec(**options: object) -> DetectorSpec:
    return DetectorSpec(AnomalousTransaction, AnomalousTransactionConfig(**options))  # type: ignore[arg-type]


def wd(
    account: str,
    ts: int,
    usd: float,
    to: str,
    balance: float | None = 100_000.0,
    tx: str | None = None,
    fee: str = "0.00",
) -> dict:
    payload = {"tx_id": tx or f"wd-{account}-{ts}", "amount": f"{usd:.2f}", "amount_usd": f"{usd:.2f}", "to_address": to,
               "asset": "USDT", "fee": fee}  # fmt: skip
    if balance is not None:
        payload["balance_usd_before"] = f"{balance:.2f}"
    return ev("withdrawal.requested", account, ts, payload)


def habit(account: str = "w1", n: int = 10, usd: float = 100.0, hour: int = 10) -> list[dict]:
    """``n`` daily withdrawals of about ``usd`` to two known addresses around ``hour``:00 UTC."""
    return [
        wd(
            account,
            T0 + d * DAY + hour * HOUR + (d % 3) * 40 * MINUTE,
            usd * (1 + 0.05 * (d % 3 - 1)),
            f"T-{account}-{d % 2}",
        )
        for d in range(n)
    ]


def at(days: int, hour: int, minute: int = 0) -> int:
    return T0 + days * DAY + hour * HOUR + minute * MINUTE


def test_large_withdrawal_to_new_address_at_night_is_explained(tmp_path: Path) -> None:
    """38× the median, a new address, 03:12: a finding that says each deviation and by how much."""
    big = wd("w1", at(11, 3, 12), 3800.0, "T-new", tx="wd-big")
    (f,) = replay_findings(tmp_path, [*habit(), big], [spec()])
    assert f.kind == "anomalous_transaction" and f.account_id == "w1"
    assert f.subject.tx_id == "wd-big" and f.subject.address == "T-new"
    assert f.detected_at == iso_ms(at(11, 3, 12))
    assert "amount 38× the account's median" in f.summary
    assert "new address" in f.summary and "03:12 UTC is outside usual hours (10–11 UTC)" in f.summary
    analyses = {a["feature"]: a for a in f.explanation["anomaly_analyses"]}
    assert analyses["amount_usd"]["observed"] == 3800.0 and analyses["amount_usd"]["baseline"] == 100.0
    assert set(analyses) == {"amount_usd", "destination", "hour_utc"}
    assert f.explanation["baseline"] == "account" and f.explanation["scoring"] == "statistics_only"
    assert f.explanation["score"] >= 0.8 and f.severity == "medium"


def test_whale_habitual_large_withdrawals_are_not_findings(tmp_path: Path) -> None:
    """Hard negative: 50–60k USD every day to known addresses from a 2M balance."""
    events = habit("whale", n=20, usd=55_000.0)
    for e in events:
        e["payload"]["balance_usd_before"] = "2000000.00"
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_first_withdrawal_after_normal_sign_up_is_not_a_finding(tmp_path: Path) -> None:
    """Hard negative: a new account deposits 500 and withdraws 150 to a new address."""
    events = [
        ev("login.succeeded", "new", at(0, 9), device_id="d1"),
        ev("deposit.initiated", "new", at(0, 9, 5), {"tx_id": "dp", "amount": "500.00", "amount_usd": "500.00"}),
        wd("new", at(0, 11), 150.0, "T-first", balance=500.0),
    ]
    assert replay_findings(tmp_path, events, [spec()]) == []


def test_balance_drain_on_a_new_account_is_a_finding(tmp_path: Path) -> None:
    """Amount plus fee equal to the whole balance: found even without history."""
    (f,) = replay_findings(tmp_path, [wd("w9", at(0, 12), 999.0, "T-x", balance=1000.0, fee="1.00")], [spec()])
    assert f.explanation["baseline"] == "population"
    assert f.explanation["anomaly_analyses"][0]["feature"] == "balance_share"
    assert "drains the balance (1,000.00 of 1,000.00 USD)" in f.summary


def test_flagged_transactions_do_not_train_the_baseline() -> None:
    """Two anomalies in a row are both found; the profile still holds only the habitual amounts."""
    records: list = []
    det = AnomalousTransaction(AnomalousTransactionConfig())
    task = Task("a", [det], emit=records.append)
    for e in [*habit(), wd("w1", at(11, 3), 3800.0, "T-new"), wd("w1", at(11, 4), 4100.0, "T-new2")]:
        task.process(decoded(e))
    task.end_batch()
    assert len(records) == 2
    profile = det.state.get("w1")
    assert profile is not None and profile.n == 10 and len(profile.amts["USDT"]) == 2 * 10
    assert profile.rusd[-2:] == (3800.0, 4100.0)  # velocity still counts what left


def test_retry_of_a_flagged_withdrawal_is_not_reported_again(tmp_path: Path) -> None:
    """The same amount to the same address twice within a day (a retry after a failure): one finding."""
    big = [
        wd("w1", at(11, 3), 3800.0, "T-new"),
        wd("w1", at(11, 3, 20), 3800.0, "T-new"),
        wd("w1", at(12, 4), 3800.0, "T-new"),
    ]
    records = replay_findings(tmp_path, [*habit(), *big], [spec()])
    assert [r.subject.tx_id for r in records] == [big[0]["payload"]["tx_id"], big[2]["payload"]["tx_id"]]


def test_findings_wait_for_the_batch_end_and_do_not_depend_on_batch_size(tmp_path: Path, model_path: Path) -> None:
    """Scoring happens at on_batch_end; batch size 1 and 4096 give byte-identical findings."""
    records: list = []
    task = Task(
        "a", [AnomalousTransaction(AnomalousTransactionConfig(model_path=str(model_path)))], emit=records.append
    )
    events = [*habit(), wd("w1", at(11, 3), 3800.0, "T-new")]
    for e in events:
        task.process(decoded(e))
    assert records == []
    task.end_batch()
    assert len(records) == 1
    runs = [
        replay_findings(tmp_path, events + habit("w2"), [spec(model_path=str(model_path))], batch_size=b)
        for b in (1, 4096)
    ]
    assert [encode_finding(f) for f in runs[0]] == [encode_finding(f) for f in runs[1]]
    assert runs[0][0].explanation["scoring"] == "statistics+isolation_forest"


# ---------------------------------------------------------------------------- the model
def population(seed: int = 7, accounts: int = 150, per_account: int = 12) -> list[dict]:
    """Ordinary history: each account has its own amount level, 1–3 addresses and hours."""
    rng = random.Random(seed)
    events = []
    for a in range(accounts):
        level = 10 ** rng.uniform(1.3, 3.7)
        hour = rng.randrange(7, 20)
        addrs = rng.randrange(1, 4)
        for i in range(per_account):
            ts = T0 + i * DAY + (hour + rng.randrange(0, 3)) * HOUR + rng.randrange(0, 60) * MINUTE
            usd = level * 10 ** rng.gauss(0, 0.12)
            events.append(wd(f"p{a:03d}", ts, usd, f"T-p{a}-{rng.randrange(addrs)}", balance=usd * rng.uniform(3, 40)))
    return events


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``secmon train`` on the ordinary population (CLI, in-process)."""
    from secmon.cli import main

    d = tmp_path_factory.mktemp("model")
    history = write_jsonl(d / "history.jsonl", sorted(population(), key=lambda e: e["occurred_at"]))
    out = d / "tx.model"
    assert main(["train", "--input", str(history), "--out", str(out), "--trees", "100", "--no-progress"]) == 0
    return out


def test_train_writes_model_and_sidecar_with_schema_window_and_threshold(model_path: Path) -> None:
    """The sidecar records feature names and order, schema hash, window, contamination, threshold."""
    meta = json.loads(model_path.with_name(model_path.name + ".json").read_text())
    events = population()
    assert meta["feature_schema"]["names"] == list(FEATURE_NAMES)
    assert len(meta["feature_schema"]["hash"]) == 16
    assert meta["rows"] == len(events)
    assert meta["training"]["first_event_at"] == min(e["occurred_at"] for e in events)
    assert meta["training"]["last_event_at"] == max(e["occurred_at"] for e in events)
    assert meta["contamination"] == 0.01 and 0.0 < meta["score_threshold"] < 1.0
    assert set(meta["priors"]["by_asset"]) == {"USDT"}


def test_model_decides_the_grey_zone_that_statistics_alone_let_pass(tmp_path: Path, model_path: Path) -> None:
    """8× the median to a new address at 03:30: each mild, below the threshold on statistics; the
    forest has seen little like the combination, and the finding fires with it."""
    events = [*habit("w1"), wd("w1", at(11, 3, 30), 800.0, "T-new")]
    assert replay_findings(tmp_path, events, [spec()]) == []
    (f,) = replay_findings(tmp_path, events, [spec(model_path=str(model_path))])
    x = f.explanation
    assert 0.5 <= x["stat_score"] < 0.8 <= x["score"]
    assert x["model_score"] > x["model_threshold"] and x["model_evidence"] > 0
    assert "the isolation forest rates it" in f.summary and "of the training history" in f.summary


def test_service_refuses_a_model_fitted_on_other_features(model_path: Path) -> None:
    """Changing a feature option makes the model unusable: a clear error at start-up."""
    assert resolve({"anomalous_transaction": {"model_path": str(model_path)}})
    with pytest.raises(ConfigError, match=r"feature schema .*warmup_n: model 5, config 7"):
        resolve({"anomalous_transaction": {"model_path": str(model_path), "warmup_n": 7}})


def test_service_refuses_a_model_with_other_feature_names(tmp_path: Path, model_path: Path) -> None:
    """A model whose recorded feature list differs (another secmon version) is refused."""
    import joblib

    blob = joblib.load(model_path)
    blob["meta"]["feature_schema"] = {**blob["meta"]["feature_schema"], "names": ["amount"], "hash": "0" * 16}
    joblib.dump(blob, tmp_path / "old.model")
    with pytest.raises(ConfigError, match=r"features \['amount'\] != \['log_amount_usd'"):
        resolve({"anomalous_transaction": {"model_path": str(tmp_path / "old.model")}})


def test_replay_with_a_mismatched_model_exits_with_a_clear_message(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``secmon replay`` stops before reading events, naming the option that differs."""
    from secmon.cli import main

    cfg = tmp_path / "secmon.yaml"
    cfg.write_text(f"detectors:\n  anomalous_transaction:\n    model_path: {model_path}\n    drain_tolerance: 0.01\n")
    events = write_jsonl(tmp_path / "e.jsonl", habit())
    assert main(["replay", str(events), "--findings", str(tmp_path / "f.jsonl"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "drain_tolerance: model 0.002, config 0.01" in err and "secmon train" in err
    assert not (tmp_path / "f.jsonl").exists()


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    """Garbage at model_path is a config error, not a crash at the first batch."""
    junk = tmp_path / "junk.model"
    junk.write_bytes(msgspec.json.encode({"not": "a model"}))
    with pytest.raises(ConfigError, match=r"not a readable model file|not a secmon\.isoforest file"):
        resolve({"anomalous_transaction": {"model_path": str(junk)}})
    with pytest.raises(ConfigError, match="No such file"):
        resolve({"anomalous_transaction": {"model_path": str(tmp_path / "missing.model")}})
