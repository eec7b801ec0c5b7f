"""BEP 44 test vectors (bittorrent.org/beps/bep_0044.html) and our signers."""

from __future__ import annotations

import pytest

from rnn_tui.dht import bep44
from rnn_tui.identity import Identity

PUBLIC = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
EXPANDED = bytes.fromhex(
    "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d"
    "b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d")
VALUE = b"Hello World!"


def test_vector_1_mutable_without_salt() -> None:
    signer = bep44.ExpandedKeySigner(EXPANDED)
    assert signer.public_key == PUBLIC
    assert bep44.signature_buffer(1, b"12:Hello World!") == b"3:seqi1e1:v12:Hello World!"
    assert bep44.mutable_target(PUBLIC).hex() == "4a533d47ec9c7d95b1ad75f576cffc641853b750"
    sig = bep44.sign_item(signer, VALUE, 1)
    assert sig.hex() == ("305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
                         "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01")
    assert bep44.verify_item(PUBLIC, VALUE, 1, sig)


def test_vector_2_mutable_with_salt() -> None:
    signer = bep44.ExpandedKeySigner(EXPANDED, PUBLIC)
    assert (bep44.signature_buffer(1, b"12:Hello World!", b"foobar")
            == b"4:salt6:foobar3:seqi1e1:v12:Hello World!")
    assert bep44.mutable_target(PUBLIC, b"foobar").hex() == "411eba73b6f087ca51a3795d9c8c938d365e32c1"
    sig = bep44.sign_item(signer, VALUE, 1, b"foobar")
    assert sig.hex() == ("6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
                         "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08")
    assert bep44.verify_item(PUBLIC, VALUE, 1, sig, b"foobar")
    assert not bep44.verify_item(PUBLIC, VALUE, 1, sig)  # the salt is covered
    assert not bep44.verify_item(PUBLIC, VALUE, 2, sig, b"foobar")  # so is seq


def test_vector_3_immutable() -> None:
    assert bep44.immutable_target(VALUE).hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb"


def test_identity_and_expanded_form_of_its_seed_sign_identically() -> None:
    seed = bytes(range(32))
    identity = Identity(seed)
    expanded = bep44.ExpandedKeySigner.from_seed(seed)
    assert expanded.public_key == identity.public_key
    assert bep44.sign_item(identity, {b"a": 1}, 5) == bep44.sign_item(expanded, {b"a": 1}, 5)


def test_expanded_signer_rejects_mismatched_public_key() -> None:
    with pytest.raises(ValueError):
        bep44.ExpandedKeySigner(EXPANDED, bytes(32))
    with pytest.raises(ValueError):
        bep44.ExpandedKeySigner(EXPANDED[:63])
