"""NAT traversal: reachability and NAT type detection, relays, hole punching.

Sans-IO cores (no asyncio, socket, clock or randomness inside):

* ``detect``: NAT type and external address from what several distinct peers observe;
* ``dialback``: proof of reachability (nonces, what an unsolicited probe must show,
  rate limits of the serving side);
* ``relay_core``: relay service state (reservations, circuits, limits);
* ``punch_core``: DCUtR-style hole punching, with a bounded birthday strategy;
* ``wire``: the binary messages they exchange; ``model``: shared vocabulary.

See docs/NAT_TRAVERSAL.md for the protocol messages and state machines.
"""
