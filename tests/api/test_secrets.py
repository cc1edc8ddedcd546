"""The file-backed TOTP secret store: owner-only permissions, validation, reload, and it
matches codes without ever handing out a secret."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyotp
import pytest

from secmon.api.secrets import FileSecretStore, SecretStore, SecretStoreError

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_it_matches_a_code_to_its_time_step(tmp_path: Path) -> None:
    store = FileSecretStore(write(tmp_path / "s.json", f'{{"a": "{SECRET}"}}'))
    assert isinstance(store, SecretStore)
    at = 1_790_000_000.0
    totp = pyotp.TOTP(SECRET)
    assert store.match_totp("a", totp.at(at), at_s=at, valid_window=1) == int(at) // 30
    assert store.match_totp("a", totp.at(at - 30), at_s=at, valid_window=1) == int(at) // 30 - 1
    assert store.match_totp("a", totp.at(at - 60), at_s=at, valid_window=1) is None
    assert store.match_totp("a", totp.at(at - 30), at_s=at, valid_window=0) is None
    assert store.match_totp("b", totp.at(at), at_s=at, valid_window=1) is None
    assert store.match_totp("a", "abcdef", at_s=at, valid_window=1) is None
    assert store.enrolled("a") and not store.enrolled("b")
    assert SECRET not in repr(store) and SECRET not in str(vars(store).get("path"))


def test_group_or_world_readable_files_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", f"a: {SECRET}\n", 0o644)
    with pytest.raises(SecretStoreError, match="chmod 600") as err:
        FileSecretStore(path)
    assert SECRET not in str(err.value)


def test_bad_files_name_the_account_never_the_value(tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError) as err:
        FileSecretStore(write(tmp_path / "s.yaml", "alice: not-base32!!\nbob: " + SECRET + "\n"))
    assert "alice" in str(err.value) and "not-base32" not in str(err.value)
    with pytest.raises(SecretStoreError):
        FileSecretStore(write(tmp_path / "list.yaml", "- a\n- b\n"))
    with pytest.raises(SecretStoreError):
        FileSecretStore(tmp_path / "missing.json")


def test_a_rotated_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", f"a: {SECRET}\n")
    store = FileSecretStore(path)
    assert not store.enrolled("b")
    time.sleep(0.01)
    write(path, f"a: {SECRET}\nb: {SECRET}\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert store.enrolled("b")
