"""nlmr.remote: the registry's DVC remote, read as DVC reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_dvc_config

from nlmr.errors import RemoteConfigError
from nlmr.remote import resolve_remote


def test_default_remote_with_endpoint(tmp_path: Path) -> None:
    write_dvc_config(tmp_path, "s3://bucket/prefix", "http://127.0.0.1:9000")
    remote = resolve_remote(tmp_path)
    assert (remote.name, remote.url, remote.endpoint_url) == (
        "storage",
        "s3://bucket/prefix",
        "http://127.0.0.1:9000",
    )


def test_config_local_credentials_are_used_but_never_shown(tmp_path: Path) -> None:
    write_dvc_config(tmp_path, "s3://bucket/p")
    (tmp_path / ".dvc/config.local").write_text(
        "['remote \"storage\"']\n    access_key_id = AKIASECRET\n    secret_access_key = hush\n"
    )
    remote = resolve_remote(tmp_path)
    assert remote.credentials["secret_access_key"] == "hush"
    assert "hush" not in repr(remote) and "AKIASECRET" not in remote.describe()


def test_relative_local_remote_is_relative_to_dot_dvc(tmp_path: Path) -> None:
    write_dvc_config(tmp_path / "reg", "../../store")
    assert resolve_remote(tmp_path / "reg").url == str((tmp_path / "store").resolve())


def test_found_from_a_subdirectory_and_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dvc_config(tmp_path, "s3://bucket/p")
    (tmp_path / "registry").mkdir()
    assert resolve_remote(tmp_path / "registry").url == "s3://bucket/p"
    monkeypatch.setenv("NLMR_REMOTE", "s3://other/x")
    assert resolve_remote(tmp_path / "registry").url == "s3://other/x"
    assert resolve_remote(tmp_path, url="s3://third").url == "s3://third"


def test_missing_or_unknown_remote(tmp_path: Path) -> None:
    with pytest.raises(RemoteConfigError, match="no remote configured") as info:
        resolve_remote(tmp_path)
    assert info.value.hint and "dvc remote add" in info.value.hint
    write_dvc_config(tmp_path, "s3://bucket/p")
    with pytest.raises(RemoteConfigError, match="no remote named 'nope'"):
        resolve_remote(tmp_path, name="nope")
