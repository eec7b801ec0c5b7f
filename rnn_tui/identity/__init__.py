"""Node identity: one Ed25519 key; its public key *is* the peer id."""

from rnn_tui.identity.keys import Identity, PeerId, verify_signature
from rnn_tui.identity.keystore import Keystore, resolve_passphrase

__all__ = ["Identity", "PeerId", "Keystore", "resolve_passphrase", "verify_signature"]
