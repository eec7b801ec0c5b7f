"""Codec benchmark: decodes/s of a get_peers reply carrying 8 nodes, on one core (CPU time).

Compares our strict decoder with bencodepy alone and with bencodepy plus the
re-encode-and-compare check that canonical strictness would need (FACTS.md).

Usage: ``python bench/dht_codec.py [--seconds 2] [--runs 5]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bencodepy  # noqa: E402

from rnn_tui.dht.codec import decode, encode  # noqa: E402
from rnn_tui.dht.messages import build_response  # noqa: E402


def sample_reply() -> bytes:
    rng = random.Random(1)
    values = {b"id": rng.randbytes(20), b"token": rng.randbytes(8), b"nodes": rng.randbytes(26 * 8)}
    return build_response(b"aa", values, ("198.51.100.7", 6881))


def rate(fn: Callable[[bytes], object], data: bytes, seconds: float) -> float:
    """Operations per second of *CPU time* (this process, one thread = one core), so the
    figure does not depend on how busy the shared machine is."""
    count = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(1000):
            fn(data)
        count += 1000
    return count / (time.process_time() - start)


def bencodepy_strict(data: bytes) -> object:
    value = bencodepy.decode(data)
    if encode(value) != data:
        raise ValueError("non-canonical")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = sample_reply()
    assert decode(data)[b"r"][b"nodes"]
    msg = decode(data)
    print(f"python {sys.version.split()[0]}; message {len(data)} bytes; median of {args.runs} runs x {args.seconds}s")
    for name, fn in (("rnn codec decode", decode), ("bencodepy.decode (lenient)", bencodepy.decode),
                     ("bencodepy.decode + canonical check", bencodepy_strict)):
        runs = [rate(fn, data, args.seconds) for _ in range(args.runs)]
        print(f"  {name:36s} {statistics.median(runs):>9,.0f} decodes/s  (min {min(runs):,.0f}, max {max(runs):,.0f})")
    runs = [rate(lambda _: encode(msg), data, args.seconds) for _ in range(args.runs)]
    print(f"  {'rnn codec encode':36s} {statistics.median(runs):>9,.0f} encodes/s")


if __name__ == "__main__":
    main()
