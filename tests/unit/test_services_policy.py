"""Executor policy decisions and the Docker stream demultiplexer (no engine needed)."""

from __future__ import annotations

import pytest

from rnn_tui.identity import Identity
from rnn_tui.services.model import Requirements, Service, ServiceKind, Visibility, VisibilityMode
from rnn_tui.services.policy import ExecutorPolicy, JobRefused, decide
from rnn_tui.services.runtime import demux_frames

OWNER = Identity(b"\x01" * 32).peer_id
FRIEND = Identity(b"\x02" * 32).peer_id
STRANGER = Identity(b"\x03" * 32).peer_id


PUBLIC = Visibility()
DEFAULTS = Requirements()


def svc(vis: Visibility = PUBLIC, req: Requirements = DEFAULTS,
        kind: ServiceKind = ServiceKind.DOCKER) -> Service:
    extra = {"image_digest": "sha256:" + "c" * 64} if kind is ServiceKind.DOCKER else {"content_hash": "sha256:0"}
    return Service.new(OWNER, "tool", kind, 0, visibility=vis, requirements=req, **extra)


def test_public_service_gets_its_requirements() -> None:
    limits = decide(svc(req=Requirements(cpu_millis=500, memory_bytes=64 << 20, pids=32,
                                         timeout_s=30)), STRANGER, ExecutorPolicy())
    assert (limits.cpu_millis, limits.memory_bytes, limits.pids, limits.timeout_s) == (
        500, 64 << 20, 32, 30)
    assert limits.network is None


def test_private_and_allowlist_refusals_give_reasons() -> None:
    with pytest.raises(JobRefused, match="private") as info:
        decide(svc(Visibility(VisibilityMode.PRIVATE)), STRANGER, ExecutorPolicy())
    assert "private" in info.value.reason
    allow = svc(Visibility(VisibilityMode.ALLOWLIST, frozenset({FRIEND})))
    with pytest.raises(JobRefused, match=f"does not include peer {STRANGER.short}"):
        decide(allow, STRANGER, ExecutorPolicy())
    assert decide(allow, FRIEND, ExecutorPolicy()).pids == 128
    assert decide(svc(Visibility(VisibilityMode.PRIVATE)), OWNER, ExecutorPolicy())


def test_requirements_above_caps_are_refused_naming_the_field() -> None:
    policy = ExecutorPolicy(max_memory_bytes=128 << 20, max_cpu_millis=1000, max_pids=64)
    with pytest.raises(JobRefused, match="memory_bytes"):
        decide(svc(req=Requirements(memory_bytes=256 << 20)), OWNER, policy)
    with pytest.raises(JobRefused, match="cpu_millis"):
        decide(svc(req=Requirements(cpu_millis=1500, memory_bytes=64 << 20)), OWNER, policy)
    with pytest.raises(JobRefused, match="pids"):
        decide(svc(req=Requirements(pids=65, memory_bytes=64 << 20)), OWNER, policy)


def test_network_only_when_needed_and_allowed() -> None:
    needs = svc(req=Requirements(network_needed=True))
    with pytest.raises(JobRefused, match="network"):
        decide(needs, OWNER, ExecutorPolicy())
    assert decide(needs, OWNER, ExecutorPolicy(allow_network=True)).network == "bridge"
    assert decide(svc(), OWNER, ExecutorPolicy(allow_network=True)).network is None


def test_timeout_is_the_smallest_of_service_policy_and_request() -> None:
    service = svc(req=Requirements(timeout_s=100))
    assert decide(service, OWNER, ExecutorPolicy(max_timeout_s=50)).timeout_s == 50
    assert decide(service, OWNER, ExecutorPolicy(), timeout_s=7).timeout_s == 7
    with pytest.raises(JobRefused, match="at least 1s"):
        decide(service, OWNER, ExecutorPolicy(), timeout_s=0)


def test_only_the_owner_replaces_the_command_unless_allowed() -> None:
    with pytest.raises(JobRefused, match="not let other peers replace it"):
        decide(svc(), STRANGER, ExecutorPolicy(), overrides_command=True)
    assert decide(svc(), OWNER, ExecutorPolicy(), overrides_command=True)
    assert decide(svc(), STRANGER, ExecutorPolicy(allow_command_override=True), overrides_command=True)
    assert decide(svc(), STRANGER, ExecutorPolicy())


def test_data_services_do_not_run_in_containers() -> None:
    with pytest.raises(JobRefused, match="DATA"):
        decide(svc(kind=ServiceKind.DATA), OWNER, ExecutorPolicy())


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_demux_merges_runs_and_keeps_partial_frames() -> None:
    data = frame(1, b"a\n") + frame(1, b"b\n") + frame(2, b"err") + frame(1, b"c")
    buf = bytearray(data + frame(2, b"partial")[:5])
    assert demux_frames(buf) == [(1, b"a\nb\n"), (2, b"err"), (1, b"c")]
    assert len(buf) == 5
    buf += frame(2, b"partial")[5:]
    assert demux_frames(buf) == [(2, b"partial")] and not buf


def test_demux_byte_by_byte_equals_all_at_once() -> None:
    data = b"".join(frame(1 + i % 2, bytes([65 + i]) * i) for i in range(20))
    whole = demux_frames(bytearray(data))
    buf = bytearray()
    pieces: list[tuple[int, bytes]] = []
    for byte in data:
        buf.append(byte)
        pieces += demux_frames(buf)
    merged: list[tuple[int, bytes]] = []
    for stream, payload in pieces:
        if merged and merged[-1][0] == stream:
            merged[-1] = (stream, merged[-1][1] + payload)
        else:
            merged.append((stream, payload))
    assert [(s, p) for s, p in merged if p] == [(s, p) for s, p in whole if p]


async def test_runtime_refuses_before_touching_the_engine(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rnn_tui.errors import ServiceError
    from rnn_tui.services.runtime import DockerRuntime, JobRequest

    runtime = DockerRuntime(OWNER, tmp_path / "jobs")  # no engine is contacted below
    with pytest.raises(ServiceError, match="no MOUNT at /nope"):
        await runtime.run(JobRequest("j1", svc(), OWNER, mounts=frozenset({"/nope"})))
    with pytest.raises(JobRefused, match="private"):
        await runtime.run(JobRequest("j2", svc(Visibility(VisibilityMode.PRIVATE)), STRANGER))
    with pytest.raises(ServiceError, match="job id"):
        await runtime.run(JobRequest("../escape", svc(), OWNER))
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())
