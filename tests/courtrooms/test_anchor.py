"""The signing key kept outside the database: created once, private, and what it signs."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from courtrooms import anchor
from courtrooms.errors import SigningKeyError


def test_the_key_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    first = anchor.load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert anchor.load_or_create_key(path).key_id == first.key_id
    # The public half alone checks what the key signed, and nothing else.
    public = anchor.load_verifier(anchor.public_key_path(path))
    assert not isinstance(public, anchor.Signer)
    signature = first.sign({"seq": 1})
    assert public.check({"seq": 1}, signature) is None
    assert public.check({"seq": 2}, signature) == "its signature does not match"
    assert public.check({"seq": 1}, None) == "it is not signed"
    other = anchor.load_or_create_key(tmp_path / "other.pem")
    assert "another key" in (public.check({"seq": 1}, other.sign({"seq": 1})) or "")


def test_workers_starting_at_once_keep_one_key(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: anchor.load_or_create_key(path).key_id, range(16)))
    assert len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing.pem", "signing.pem.pub"]


def test_a_file_that_is_not_a_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    path.write_text("not a key")
    with pytest.raises(SigningKeyError, match=r"signing\.pem is not a PEM private key"):
        anchor.load_or_create_key(path)
    with pytest.raises(SigningKeyError, match="no signing key"):
        anchor.load_verifier(tmp_path / "absent.pem")
