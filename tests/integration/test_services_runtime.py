"""Confined execution against the real engine: streams, mounts, limits, network, timeout,
cancel, refusal, and leftovers reaped after ``kill -9`` of the process that started them."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rnn_tui.identity import Identity
from rnn_tui.services.interfaces import INTERFACES_LABEL
from rnn_tui.services.model import Requirements, Visibility, VisibilityMode
from rnn_tui.services.policy import ExecutorPolicy, JobRefused
from rnn_tui.services.registry import ServiceOptions
from rnn_tui.services.runtime import NODE_LABEL, DockerRuntime, JobOutcome, JobRequest, OutputChunk

pytestmark = [pytest.mark.integration, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]


async def base_service(registry, base_image: str, name: str = "base", **options):  # type: ignore[no-untyped-def]
    return await registry.add_local_image(base_image, ServiceOptions(name=name, **options))


async def test_stdin_to_stdout_stderr_and_live_chunks(service_registry, docker_runtime, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    chunks: list[OutputChunk] = []
    payload = b"".join(b"line %06d\n" % i for i in range(20000))
    result = await docker_runtime.run(JobRequest(
        "echo-job", service, node_identity.peer_id, stdin=payload,
        command=("sh", "-c", "cat; echo to-stderr >&2; exit 0"), on_output=chunks.append))
    assert result.outcome is JobOutcome.COMPLETED, result.explanation
    assert result.stdout_path.read_bytes() == payload
    assert result.stderr_path.read_bytes() == b"to-stderr\n"
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == payload
    assert [c.data for c in chunks if c.stream == "stderr"] == [b"to-stderr\n"]
    assert (result.stdout_bytes, result.stderr_bytes) == (len(payload), 10)


async def test_mount_input_to_mount_output_with_engine_logs(service_registry, docker_runtime, base_image, node_identity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    label = json.dumps([{"type": "STDOUT"}, {"type": "STDERR"}, {"type": "LOGS"},
                        {"type": "MOUNT", "path": "/in", "direction": "INPUT"},
                        {"type": "MOUNT", "path": "/out", "direction": "OUTPUT"}])
    ctx = tmp_path / "upper"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base_image}\nLABEL {INTERFACES_LABEL}='{label}'\n"
        "CMD [\"sh\", \"-c\", \"tr a-z A-Z < /in/msg > /out/result; "
        "touch /in/forbidden || echo input-is-read-only >&2; echo done\"]\n")
    service = await service_registry.add_from_dockerfile_dir(ctx)
    ws = docker_runtime.workspace("mount-job", service)
    (ws.dir_for("/in") / "msg").write_text("hello mounts\n")
    assert (ws.root.stat().st_mode & 0o777) == 0o700
    result = await docker_runtime.run(JobRequest("mount-job", service, node_identity.peer_id,
                                                 engine_logs=True))
    assert result.outcome is JobOutcome.COMPLETED, result.explanation
    assert (result.outputs["/out"] / "result").read_text() == "HELLO MOUNTS\n"
    assert "/in" not in result.outputs
    assert b"input-is-read-only" in result.stderr_path.read_bytes()
    assert result.logs_path is not None
    logs = result.logs_path.read_text().splitlines()
    assert any(line.endswith(" done") and line[:4].isdigit() and "T" in line.split()[0]
               for line in logs), logs  # RFC 3339 timestamp, then the line


async def test_nonzero_exit_is_errored_with_code(service_registry, docker_runtime, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    result = await docker_runtime.run(JobRequest("fail-job", service, node_identity.peer_id,
                                                 command=("sh", "-c", "exit 7")))
    assert result.outcome is JobOutcome.ERRORED and result.exit_code == 7
    assert "code 7" in result.explanation


async def test_memory_limit_ends_as_oom(service_registry, docker_runtime, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image,
                                 requirements=Requirements(memory_bytes=16 << 20))
    result = await docker_runtime.run(JobRequest(
        "oom-job", service, node_identity.peer_id,
        command=("sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")))
    assert result.outcome is JobOutcome.OOM_KILLED, result.explanation
    assert "memory limit" in result.explanation
    assert b"survived" not in result.stdout_path.read_bytes()


def bridge_gateway(client) -> str:  # type: ignore[no-untyped-def]
    """The default bridge's gateway (docker0 on this machine); the engine omits it at times."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(ipaddress.ip_network(config["Subnet"])[1])


async def test_network_absent_by_default_and_present_only_when_allowed(service_registry, docker_client, base_image, node_identity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gateway = bridge_gateway(docker_client)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((gateway, 0))  # the docker bridge gateway is this machine
    listener.listen(4)
    listener.settimeout(30)
    port = listener.getsockname()[1]
    accepted: list[str] = []

    def accept_once() -> None:
        try:
            conn, peer = listener.accept()
        except OSError:
            return
        accepted.append(peer[0])
        conn.close()  # closing ends nc's read

    acceptor = threading.Thread(target=accept_once, daemon=True)
    acceptor.start()
    probe = ("sh", "-c", f"ls /sys/class/net; nc -w 2 {gateway} {port} </dev/null "
                         "&& echo CONNECTED || echo FAILED")
    try:
        plain = await base_service(service_registry, base_image, "offline")
        confined = DockerRuntime(node_identity.peer_id, tmp_path / "a", client=docker_client)
        result = await confined.run(JobRequest("net-off", plain, node_identity.peer_id,
                                               command=probe, timeout_s=20))
        assert result.stdout_path.read_text().split() == ["lo", "FAILED"]

        needs = await base_service(service_registry, base_image, "online",
                                   requirements=Requirements(network_needed=True))
        with pytest.raises(JobRefused, match="network"):
            await confined.run(JobRequest("net-refused", needs, node_identity.peer_id, command=probe))
        open_policy = DockerRuntime(node_identity.peer_id, tmp_path / "b",
                                    ExecutorPolicy(allow_network=True), client=docker_client)
        result = await open_policy.run(JobRequest("net-on", needs, node_identity.peer_id,
                                                  command=probe, timeout_s=20))
        assert result.stdout_path.read_text().split()[-1] == "CONNECTED"  # the control case
        assert len(accepted) == 1
    finally:
        listener.close()


async def test_confinement_flags(service_registry, docker_runtime, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image,
                                 requirements=Requirements(pids=20, memory_bytes=32 << 20))
    script = ("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
              "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
              "2>/dev/null || cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max; id -u")
    result = await docker_runtime.run(JobRequest("caps-job", service, node_identity.peer_id,
                                                 command=("sh", "-c", script)))
    lines = result.stdout_path.read_text().split("\n")
    assert "CapEff:\t0000000000000000" in lines and "NoNewPrivs:\t1" in lines
    assert "20" in lines and str(32 << 20) in lines
    assert lines[-2] == str(os.getuid())


async def test_timeout_kills_and_removes(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    result = await docker_runtime.run(JobRequest("slow-job", service, node_identity.peer_id,
                                                 command=("sleep", "60"), timeout_s=1))
    assert result.outcome is JobOutcome.TIMED_OUT and "1s timeout" in result.explanation
    assert not docker_client.containers.list(all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"})


async def test_cancel_stops_and_removes(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    started = asyncio.Event()
    job = asyncio.ensure_future(docker_runtime.run(JobRequest(
        "cancel-job", service, node_identity.peer_id, command=("sh", "-c", "echo up; sleep 60"),
        on_output=lambda chunk: started.set())))
    await asyncio.wait_for(started.wait(), 30)
    assert await docker_runtime.cancel("cancel-job", "the requester changed its mind")
    result = await asyncio.wait_for(job, 30)
    assert result.outcome is JobOutcome.CANCELLED
    assert "the requester changed its mind" in result.explanation
    assert not docker_client.containers.list(all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"})
    assert not await docker_runtime.cancel("cancel-job")


async def test_private_service_refused_for_other_peer(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image,
                                 visibility=Visibility(VisibilityMode.PRIVATE))
    stranger = Identity(os.urandom(32)).peer_id
    with pytest.raises(JobRefused, match="private"):
        await docker_runtime.run(JobRequest("priv-job", service, stranger, command=("true",)))
    assert not docker_client.containers.list(all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"})
    result = await docker_runtime.run(JobRequest("own-job", service, node_identity.peer_id, command=("true",)))
    assert result.outcome is JobOutcome.COMPLETED


CHILD = r'''
import asyncio, sys, time
from pathlib import Path
from rnn_tui.identity import Identity
from rnn_tui.services.registry import InMemoryServiceRepository, ServiceOptions, ServiceRegistry
from rnn_tui.services.runtime import DockerRuntime, JobRequest

async def main():
    ident = Identity(bytes.fromhex(sys.argv[1]))
    registry = ServiceRegistry(InMemoryServiceRepository(), ident.peer_id, clock=time.time)
    service = await registry.add_local_image(sys.argv[2], ServiceOptions(name="sleeper"))
    runtime = DockerRuntime(ident.peer_id, Path(sys.argv[3]))
    await runtime.run(JobRequest("crash-job", service, ident.peer_id, command=("sleep", "300"),
                                 on_output=print))

asyncio.run(main())
'''


async def test_leftovers_reaped_after_kill_9(docker_client, base_image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed = os.urandom(32)
    node = Identity(seed).peer_id
    flt = {"label": f"{NODE_LABEL}={node}"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, seed.hex(), base_image, str(tmp_path)],  # noqa: ASYNC220
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = docker_client.containers.list(filters={**flt, "status": "running"})
            if running or child.poll() is not None:
                break
            await asyncio.sleep(0.2)
        assert running, f"the child never started its container: {child.stderr.read() if child.stderr else ''}"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)  # noqa: ASYNC101
        assert docker_client.containers.list(all=True, filters=flt), "expected a leftover"
        reaped = await DockerRuntime(node, tmp_path, client=docker_client).reap_leftovers()
        assert reaped == ["crash-job"]
        assert not docker_client.containers.list(all=True, filters=flt)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)  # noqa: ASYNC101
        for container in docker_client.containers.list(all=True, filters=flt):
            container.remove(force=True)


async def test_cancelled_task_still_removes_the_container(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    started = asyncio.Event()
    task = asyncio.ensure_future(docker_runtime.run(JobRequest(
        "task-cancel", service, node_identity.peer_id, command=("sh", "-c", "echo up; sleep 60"),
        on_output=lambda chunk: started.set())))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()  # the node shutting down, say: not a job cancel
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not docker_client.containers.list(all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"})


async def test_busy_executor_refuses_beyond_its_limit(service_registry, docker_client, base_image, node_identity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    runtime = DockerRuntime(node_identity.peer_id, tmp_path / "jobs",
                            ExecutorPolicy(max_concurrent_jobs=1), client=docker_client)
    started = asyncio.Event()
    first = asyncio.ensure_future(runtime.run(JobRequest(
        "busy-1", service, node_identity.peer_id, command=("sh", "-c", "echo up; sleep 60"),
        on_output=lambda chunk: started.set())))
    try:
        await asyncio.wait_for(started.wait(), 30)
        with pytest.raises(JobRefused, match="executor busy"):
            await runtime.run(JobRequest("busy-2", service, node_identity.peer_id, command=("true",)))
    finally:
        await runtime.cancel("busy-1")
        result = await asyncio.wait_for(first, 30)
    assert result.outcome is JobOutcome.CANCELLED


async def test_stdin_from_a_file_and_from_chunks(service_registry, docker_runtime, base_image, node_identity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    source = tmp_path / "input.bin"
    source.write_bytes(os.urandom(3 << 20))
    from_file = await docker_runtime.run(JobRequest("stdin-file", service, node_identity.peer_id,
                                                    stdin=source, command=("cat",)))
    assert from_file.stdout_path.read_bytes() == source.read_bytes()
    chunks = [b"a" * 100_000, b"", b"b" * 7]
    from_chunks = await docker_runtime.run(JobRequest("stdin-chunks", service, node_identity.peer_id,
                                                      stdin=iter(chunks), command=("wc", "-c")))
    assert from_chunks.stdout_path.read_text().strip() == "100007"


async def test_missing_command_is_errored_not_raised(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    result = await docker_runtime.run(JobRequest("nocmd-job", service, node_identity.peer_id,
                                                 command=("no-such-program",)))
    assert result.outcome is JobOutcome.ERRORED
    assert result.explanation.startswith("could not start:") and "no-such-program" in result.explanation
    assert not docker_client.containers.list(all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"})


async def test_read_only_rootfs_policy(service_registry, docker_client, base_image, node_identity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    runtime = DockerRuntime(node_identity.peer_id, tmp_path / "jobs",
                            ExecutorPolicy(read_only_rootfs=True, tmpfs_bytes=1 << 20),
                            client=docker_client)
    script = ("touch /etc/x 2>/dev/null && echo ROOT-WRITABLE || echo ROOT-READONLY; "
              "echo ok > /tmp/t && cat /tmp/t; "
              "head -c 2000000 /dev/zero > /tmp/big 2>/dev/null && echo TMP-UNBOUNDED || echo TMP-FULL")
    result = await runtime.run(JobRequest("ro-job", service, node_identity.peer_id,
                                          command=("sh", "-c", script)))
    assert result.stdout_path.read_text().split() == ["ROOT-READONLY", "ok", "TMP-FULL"]


async def test_cancel_during_create_leaves_nothing(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    for delay in (0.0, 0.01, 0.05, 0.2):  # cancel at different points of create/attach/start
        task = asyncio.ensure_future(docker_runtime.run(JobRequest(
            f"early-{int(delay * 1000)}", service, node_identity.peer_id, command=("sleep", "30"))))
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not docker_client.containers.list(
            all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"}), delay


def _ours(docker_client, node_identity) -> list:  # type: ignore[no-untyped-def]
    return docker_client.containers.list(
        all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"})


async def test_prepared_container_is_the_one_run_and_removed_later(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    request = JobRequest("prep-job", service, node_identity.peer_id, command=("sh", "-c", "cat"))
    docker_runtime.prepare(request)
    await asyncio.sleep(0.5)
    prepared = _ours(docker_client, node_identity)
    assert len(prepared) == 1 and prepared[0].status == "created"
    result = await docker_runtime.run(JobRequest(
        "prep-job", service, node_identity.peer_id, stdin=b"fed\n", command=("sh", "-c", "cat")),
        remove_later=True)
    assert result.outcome is JobOutcome.COMPLETED, result.explanation
    assert result.stdout_path.read_bytes() == b"fed\n"
    # hashed while streamed, so the executor needs no second pass over the file
    assert result.stdout_sha256 == hashlib.sha256(b"fed\n").digest()
    assert result.stderr_sha256 == hashlib.sha256(b"").digest()
    assert [name for name, _at in result.phases][:3] == ["begin", "created", "attached"]
    await docker_runtime.wait_removed("prep-job")
    assert not _ours(docker_client, node_identity)
    # the prepared container was the one that ran: no second container was ever created
    events = docker_client.api.events(since=int(time.time()) - 60, until=int(time.time()) + 1,
                                      decode=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}",
                                                            "event": "create"})
    assert len(list(events)) == 1


async def test_prepared_container_made_differently_is_replaced_or_discarded(service_registry, docker_runtime, docker_client, base_image, node_identity) -> None:  # type: ignore[no-untyped-def]
    service = await base_service(service_registry, base_image)
    docker_runtime.prepare(JobRequest("prep-a", service, node_identity.peer_id,
                                      command=("sh", "-c", "echo old")))
    # run asks for another command (and engine logs): the prepared container does not fit
    result = await docker_runtime.run(JobRequest("prep-a", service, node_identity.peer_id,
                                                 command=("sh", "-c", "echo new"),
                                                 engine_logs=True))
    assert result.stdout_path.read_text() == "new\n"
    assert not _ours(docker_client, node_identity)
    docker_runtime.prepare(JobRequest("prep-b", service, node_identity.peer_id,
                                      command=("sleep", "30")))
    await docker_runtime.discard_prepared("prep-b")
    assert not _ours(docker_client, node_identity)
    docker_runtime.prepare(JobRequest("prep-c", service, node_identity.peer_id,
                                      command=("sleep", "30")))
    await docker_runtime.drain()
    assert not _ours(docker_client, node_identity)
