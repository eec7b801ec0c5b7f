from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnn_tui.errors import KeystoreError
from rnn_tui.identity import (
    Identity,
    Keystore,
    PeerId,
    resolve_passphrase,
    verify_signature,
    zbase32,
)


@given(st.binary(min_size=0, max_size=64))
def test_zbase32_round_trip(data: bytes) -> None:
    assert zbase32.decode(zbase32.encode(data), len(data)) == data


def test_zbase32_rejects_bad_text() -> None:
    text = zbase32.encode(b"\x01" * 32)
    with pytest.raises(ValueError, match="character"):
        zbase32.decode(text[:-1] + "0", 32)  # '0' is not in the alphabet
    with pytest.raises(ValueError, match="expected 52"):
        zbase32.decode(text[:-1], 32)


def test_peer_id_is_public_key_and_parses_both_forms() -> None:
    ident = Identity.generate()
    assert ident.peer_id.key == ident.public_key
    assert len(str(ident.peer_id)) == 52
    assert PeerId.parse(str(ident.peer_id)) == ident.peer_id
    assert PeerId.parse(ident.peer_id.hex) == ident.peer_id
    assert str(ident.peer_id).startswith(ident.peer_id.short)
    with pytest.raises(ValueError, match="not a peer id"):
        PeerId.parse("hello")


def test_signatures_verify_and_tamper_fails() -> None:
    ident = Identity.generate()
    sig = ident.sign(b"message")
    assert verify_signature(ident.public_key, b"message", sig)
    assert not verify_signature(ident.public_key, b"messagE", sig)
    assert not verify_signature(Identity.generate().public_key, b"message", sig)
    assert not verify_signature(b"short", b"message", sig)


def test_keystore_round_trip_and_mode(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "k" / "identity.key", kdf_cost="interactive")
    ident = Identity.generate()
    ks.save(ident, b"correct horse")
    assert stat.S_IMODE(os.stat(ks.path).st_mode) == 0o600
    loaded = ks.load(b"correct horse")
    assert loaded.seed == ident.seed and loaded.peer_id == ident.peer_id
    doc = json.loads(ks.path.read_text())
    assert doc["version"] == 1 and doc["kdf"]["name"] == "argon2id"
    assert "opslimit" in doc["kdf"] and "memlimit" in doc["kdf"]
    assert ident.seed.hex() not in ks.path.read_text()
    assert ks.info().peer_id == ident.peer_id


def test_moderate_cost_is_the_default(tmp_path: Path) -> None:
    import nacl.pwhash

    ks = Keystore(tmp_path / "identity.key")
    ks.save(Identity.generate(), b"pw")
    kdf = json.loads(ks.path.read_text())["kdf"]
    assert kdf["opslimit"] == nacl.pwhash.argon2id.OPSLIMIT_MODERATE
    assert kdf["memlimit"] == nacl.pwhash.argon2id.MEMLIMIT_MODERATE


def test_wrong_passphrase_is_clear_and_file_untouched(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "identity.key", kdf_cost="interactive")
    ks.save(Identity.generate(), b"right")
    before = ks.path.read_bytes()
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        ks.load(b"wrong")
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        ks.load_or_create(b"wrong")
    assert ks.path.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty"])
def test_corrupted_keystore_is_clear_and_never_overwritten(tmp_path: Path, damage: str) -> None:
    ks = Keystore(tmp_path / "identity.key", kdf_cost="interactive")
    ks.save(Identity.generate(), b"pw")
    raw = ks.path.read_bytes()
    if damage == "truncate":
        bad = raw[: len(raw) // 2]
    elif damage == "garbage":
        bad = b"\x00\xff" * 40
    elif damage == "empty":
        bad = b""
    else:
        doc = json.loads(raw)
        box = bytearray(bytes.fromhex(doc["box"]))
        box[-1] ^= 1
        doc["box"] = box.hex()
        bad = json.dumps(doc).encode()
    ks.path.write_bytes(bad)
    with pytest.raises(KeystoreError) as err:
        ks.load_or_create(b"pw")
    assert str(ks.path) in str(err.value)
    assert ks.path.read_bytes() == bad  # never overwritten


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "identity.key", kdf_cost="interactive")
    first = Identity.generate()
    ks.save(first, b"pw")
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        ks.save(Identity.generate(), b"pw")
    assert ks.load(b"pw").peer_id == first.peer_id


def test_passphrase_resolution_order(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    pfile = tmp_path / "pass.txt"
    pfile.write_text("from-file\n")
    assert resolve_passphrase(pfile, cfg, env={"RNN_PASSPHRASE": "env"}) == b"from-file"
    assert resolve_passphrase(None, cfg, env={"RNN_PASSPHRASE": "env"}) == b"env"
    auto = resolve_passphrase(None, cfg, env={})  # creates the auto passphrase file
    assert (cfg / "passphrase").exists()
    assert stat.S_IMODE(os.stat(cfg / "passphrase").st_mode) == 0o600
    assert resolve_passphrase(None, cfg, env={}) == auto
    with pytest.raises(KeystoreError, match="cannot read passphrase file"):
        resolve_passphrase(tmp_path / "missing", cfg, env={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(KeystoreError, match="empty"):
        resolve_passphrase(empty, cfg, env={})


def test_no_passphrase_and_existing_keystore_without_tty_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="no keystore passphrase"):
        resolve_passphrase(None, tmp_path / "nocfg", create=False, env={})
