"""Confined execution of DOCKER services with docker-py against the real engine.

One job = one container, always removed afterwards (``finally``, shielded from
cancellation), labelled with the node and the job so that ``reap_leftovers`` can remove
what a crashed node left behind.

Confinement, by default and not negotiable by the service: no network (``none``) unless
the service needs one *and* the executor's policy allows it; memory (no extra swap), CPU
and pids limits from ``policy.decide``; ``no-new-privileges``; every capability dropped;
never privileged; the container runs as the node's own uid:gid; the only host paths are
the job's own directories (inputs read-only); a wall-clock timeout.

Streams.  We attach one raw socket *before* start (so no byte is lost) and:
- feed STDIN from a thread with ``sendall`` and deliver EOF with ``shutdown(SHUT_WR)``;
- read the multiplexed stdout/stderr frames from a thread, append them to files and hand
  coalesced chunks to ``on_output`` on the event loop (one callback per socket read, not
  per line: 200k lines/s would otherwise be 200k loop callbacks).
The container's log driver is ``none`` unless the job asks for engine LOGS: the json-file
driver writes a record per line and throttles tiny lines to ~1 MB/s (FACTS.md), which would
throttle the live stream too.  With ``engine_logs=True`` the json-file driver is used and
``logs(timestamps=True)`` is saved after exit.

Blocking docker calls run in threads; long waits (``wait``, the stream reader, the stdin
feeder) get their own thread each so that many running jobs never starve the default
executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
from docker.types import LogConfig

from rnn_tui.errors import ServiceError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.model import InterfaceType, MountDirection, Service
from rnn_tui.services.policy import ExecutorPolicy, JobLimits, JobRefused, decide

__all__ = ["JobOutcome", "OutputChunk", "JobRequest", "JobResult", "Workspace", "DockerRuntime",
           "NODE_LABEL", "JOB_LABEL", "demux_frames"]

log = logging.getLogger(__name__)

NODE_LABEL = "io.remote-network.node"
JOB_LABEL = "io.remote-network.job"
_RECV = 256 * 1024
_STDIN_CHUNK = 1024 * 1024
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_T = TypeVar("_T")

StdinSource = bytes | Path | Iterable[bytes] | None


class JobOutcome(StrEnum):
    COMPLETED = "COMPLETED"
    ERRORED = "ERRORED"
    OOM_KILLED = "OOM_KILLED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Bytes a job wrote, in order within each stream (``stdout`` or ``stderr``)."""

    stream: str
    data: bytes


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job to run.  ``mounts`` limits which MOUNT paths are bound (default: all).

    ``on_output`` is called on the event loop with coalesced chunks while the job runs.
    """

    job_id: str
    service: Service
    requester: PeerId
    stdin: StdinSource = None
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: int | None = None
    mounts: frozenset[str] | None = None
    engine_logs: bool = False
    on_output: Callable[[OutputChunk], None] | None = None


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    outcome: JobOutcome
    explanation: str
    exit_code: int | None
    stdout_path: Path
    stderr_path: Path
    logs_path: Path | None
    outputs: Mapping[str, Path]
    stdout_bytes: int
    stderr_bytes: int
    duration_s: float
    # (phase, time.time()) marks of the run's steps, for the workflow benchmark's timeline
    phases: tuple[tuple[str, float], ...] = ()
    # sha256 of the stdout/stderr files, computed while they were written (no second pass)
    stdout_sha256: bytes | None = None
    stderr_sha256: bytes | None = None


class Workspace:
    """A job's host directories, under ``jobs_root/<job_id>`` (mode 0700, owned by the node).

    Each MOUNT path gets ``in/<n>`` (INPUT, bound read-only), ``out/<n>`` (OUTPUT) or
    ``io/<n>`` (BOTH).  Callers put inputs into ``dir_for(path)`` before the job starts and
    read outputs from it afterwards.
    """

    def __init__(self, root: Path, service: Service) -> None:
        self.root = root
        self._dirs: dict[str, tuple[Path, MountDirection]] = {}
        for index, iface in enumerate(service.mounts()):
            assert iface.path is not None and iface.direction is not None
            sub = {MountDirection.INPUT: "in", MountDirection.OUTPUT: "out",
                   MountDirection.BOTH: "io"}[iface.direction]
            slug = re.sub(r"[^A-Za-z0-9_.-]", "_", iface.path.strip("/"))[:40]
            self._dirs[iface.path] = (root / sub / f"{index}-{slug}", iface.direction)

    def create(self) -> Workspace:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for path, _direction in self._dirs.values():
            path.parent.mkdir(mode=0o700, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
        return self

    def dir_for(self, container_path: str) -> Path:
        try:
            return self._dirs[container_path][0]
        except KeyError:
            raise ServiceError(f"the service has no MOUNT at {container_path!r}; "
                               f"it has {sorted(self._dirs) or 'none'}") from None

    def items(self) -> list[tuple[str, Path, MountDirection]]:
        return [(cpath, host, direction) for cpath, (host, direction) in self._dirs.items()]

    @property
    def stdout_path(self) -> Path:
        return self.root / "stdout"

    @property
    def stderr_path(self) -> Path:
        return self.root / "stderr"

    @property
    def logs_path(self) -> Path:
        return self.root / "logs"


def demux_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Pop every complete Docker stream frame from ``buffer`` (in place).

    A frame is ``[stream, 0, 0, 0, size (4 bytes BE)]`` + payload; stream 1 is stdout,
    2 stderr.  Consecutive frames of one stream are merged, so a burst of tiny writes
    becomes one chunk.
    """
    runs: list[tuple[int, list[memoryview]]] = []
    pos = 0
    end = len(buffer)
    view = memoryview(buffer)
    try:
        while end - pos >= 8:
            size = int.from_bytes(view[pos + 4:pos + 8], "big")
            if end - pos - 8 < size:
                break
            stream = view[pos]
            payload = view[pos + 8:pos + 8 + size]
            if runs and runs[-1][0] == stream:
                runs[-1][1].append(payload)  # joined once below: no quadratic copying
            else:
                runs.append((stream, [payload]))
            pos += 8 + size
        out = [(stream, b"".join(parts)) for stream, parts in runs]
    finally:
        for _, parts in runs:
            for part in parts:
                part.release()
        view.release()
    del buffer[:pos]
    return out


def _in_thread(fn: Callable[[], _T], name: str) -> asyncio.Future[_T]:
    """Run a long blocking call in its own daemon thread; resolve a loop future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # delivered to the awaiting coroutine
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, False, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, True, value)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class _StreamPump:
    """Reads the attach socket: frames → files + coalesced callbacks on the loop."""

    def __init__(self, sock: socket.socket, ws: Workspace, max_bytes: int,
                 on_output: Callable[[OutputChunk], None] | None,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.ws = ws
        self.max_bytes = max_bytes
        self.on_output = on_output
        self.loop = loop
        self.counts = {1: 0, 2: 0}
        self.hashes = {1: hashlib.sha256(), 2: hashlib.sha256()}
        self.truncated = False

    def _deliver(self, chunks: list[OutputChunk]) -> None:
        assert self.on_output is not None
        for chunk in chunks:
            try:
                self.on_output(chunk)
            except Exception:
                log.exception("output callback failed; the job goes on")

    def run(self) -> None:
        buffer = bytearray()
        names = {1: "stdout", 2: "stderr"}
        with open(self.ws.stdout_path, "wb", buffering=1 << 20) as out, \
                open(self.ws.stderr_path, "wb", buffering=1 << 20) as err:
            files = {1: out, 2: err}
            while True:
                try:
                    data = self.sock.recv(_RECV)
                except OSError:
                    break
                if not data:
                    break
                buffer += data
                chunks = []
                for stream, payload in demux_frames(buffer):
                    if stream not in files:
                        continue
                    if self.counts[1] + self.counts[2] + len(payload) > self.max_bytes:
                        self.truncated = True
                        continue
                    self.counts[stream] += len(payload)
                    files[stream].write(payload)
                    self.hashes[stream].update(payload)
                    if self.on_output is not None:
                        chunks.append(OutputChunk(names[stream], payload))
                if chunks:
                    with contextlib.suppress(RuntimeError):  # loop closed under us
                        self.loop.call_soon_threadsafe(self._deliver, chunks)


def _feed_stdin(sock: socket.socket, source: StdinSource) -> None:
    """Send ``source`` and then EOF.  A job that exits early just ends the feed."""
    try:
        if isinstance(source, bytes):
            view = memoryview(source)
            for offset in range(0, len(view), _STDIN_CHUNK):
                sock.sendall(view[offset:offset + _STDIN_CHUNK])
        elif isinstance(source, Path):
            with open(source, "rb") as handle:
                sock.sendfile(handle)  # zero-copy where the kernel allows, else read/send
        elif source is not None:
            for chunk in source:
                sock.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


class DockerRuntime:
    """Runs jobs for one node.  ``node_id`` labels every container we create."""

    def __init__(self, node_id: PeerId, jobs_root: Path, policy: ExecutorPolicy | None = None,
                 *, client: docker.DockerClient | None = None) -> None:
        self.node_id = node_id
        self.jobs_root = Path(jobs_root)
        self.policy = policy or ExecutorPolicy()
        self._client = client
        self._cancels: dict[str, tuple[asyncio.Event, list[str]]] = {}
        # containers created ahead of their run (``prepare``), with what they were made for
        self._prepared: dict[str, tuple[asyncio.Future[str], tuple[Any, ...]]] = {}
        # removals that ``run(remove_later=True)`` left running in the background
        self._removals: dict[str, asyncio.Future[None]] = {}

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=120)
            except docker.errors.DockerException as exc:
                raise ServiceError(f"cannot reach the Docker engine ({exc})") from None
        return self._client

    # ------------------------------------------------------------ housekeeping
    async def reap_leftovers(self) -> list[str]:
        """Remove every container labelled with our node id (a crash's leftovers)."""
        return await asyncio.to_thread(self._reap_blocking)

    def _reap_blocking(self) -> list[str]:
        removed = []
        try:
            found = self.client.containers.list(
                all=True, filters={"label": f"{NODE_LABEL}={self.node_id}"})
        except docker.errors.APIError as exc:
            raise ServiceError(f"cannot list leftover containers ({exc.explanation})") from None
        for container in found:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
                removed.append(str(container.labels.get(JOB_LABEL, container.id)))
        return removed

    def reclaim(self, job_id: str) -> dict[str, Any] | None:
        """Remove our container of ``job_id`` if one is left (blocking: call in a thread).

        Returns its last ``State`` (running or not, exit code) so an executor that restarted
        can say what became of the job, or ``None`` if there was no such container.
        """
        api = self.client.api
        try:
            found = api.containers(all=True, filters={
                "label": [f"{NODE_LABEL}={self.node_id}", f"{JOB_LABEL}={job_id}"]})
        except docker.errors.APIError as exc:
            raise ServiceError(f"cannot list the container of job {job_id} "
                               f"({exc.explanation})") from None
        state: dict[str, Any] | None = None
        for entry in found:
            container = str(entry["Id"])
            state = dict(self._inspect(container).get("State") or {})
            self._remove(container)
        return state

    def workspace(self, job_id: str, service: Service) -> Workspace:
        """The job's directories (created, 0700); put MOUNT inputs in before ``run``."""
        if not _JOB_ID.match(job_id):
            raise ServiceError(f"job id {job_id!r}: use 1-128 letters, digits, '_', '.', '-'")
        self.jobs_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Workspace(self.jobs_root / job_id, service).create()

    def discard_workspace(self, job_id: str) -> None:
        if _JOB_ID.match(job_id):
            shutil.rmtree(self.jobs_root / job_id, ignore_errors=True)

    async def cancel(self, job_id: str, reason: str = "cancelled by the requester") -> bool:
        """Cancel a running job: it stops, is removed and ends as CANCELLED."""
        entry = self._cancels.get(job_id)
        if entry is None:
            return False
        entry[1].append(reason)
        entry[0].set()
        return True

    # ------------------------------------------------------------ running
    def _limits(self, request: JobRequest) -> JobLimits:
        """The job's limits after every check that needs no engine (``JobRefused`` if refused)."""
        service = request.service
        limits = decide(service, request.requester, self.policy, request.timeout_s,
                        overrides_command=request.command is not None)
        if request.mounts is not None:
            unknown = sorted(set(request.mounts) - {i.path for i in service.mounts()})
            if unknown:
                raise ServiceError(f"job {request.job_id}: service {service.name!r} has no MOUNT "
                                   f"at {', '.join(unknown)}")
        if request.stdin is not None and not service.has_interface(InterfaceType.STDIN):
            raise ServiceError(f"service {service.name!r} has no STDIN interface")
        return limits

    @staticmethod
    def _made_for(request: JobRequest, limits: JobLimits) -> tuple[Any, ...]:
        """Everything a container's creation depends on: a prepared one is used only if equal."""
        return (request.service, request.command, tuple(sorted(request.env.items())),
                request.mounts, request.engine_logs, limits)

    def prepare(self, request: JobRequest) -> None:
        """Create the job's container now, ahead of ``run``, which then only starts it.

        Why: creating a container is an engine round trip (15-40 ms, more under load) that
        does not depend on the job's inputs, so an executor does it while the requester is
        still placing the other jobs and the inputs are on their way.  ``run`` uses the
        container only if the request it gets was made the same way (command, env, mounts,
        log driver, limits); otherwise, or if the creation failed, it removes it and creates
        anew.  ``discard_prepared`` removes one that will never run.  Raises like ``run``
        for a request that would be refused.
        """
        limits = self._limits(request)
        if request.job_id in self._prepared or request.job_id in self._cancels:
            raise ServiceError(f"job {request.job_id!r} already has a container")
        ws = self.workspace(request.job_id, request.service)
        future = asyncio.ensure_future(asyncio.to_thread(self._create, request, limits, ws))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen by run
        self._prepared[request.job_id] = (future, self._made_for(request, limits))

    async def discard_prepared(self, job_id: str) -> None:
        """Remove the container ``prepare`` made for a job that will not run (no-op if none)."""
        entry = self._prepared.pop(job_id, None)
        if entry is None:
            return
        with contextlib.suppress(Exception):
            container = await asyncio.shield(entry[0])
            await asyncio.shield(asyncio.to_thread(self._remove, container))

    async def wait_removed(self, job_id: str) -> None:
        """Wait for the background removal of a job's container (``run(remove_later=True)``)."""
        removal = self._removals.get(job_id)
        if removal is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(removal)

    async def drain(self) -> None:
        """Remove every prepared container and finish every background removal (shutdown)."""
        for job_id in list(self._prepared):
            await self.discard_prepared(job_id)
        for job_id in list(self._removals):
            await self.wait_removed(job_id)

    def _container_for(self, request: JobRequest, limits: JobLimits,
                       ws: Workspace) -> asyncio.Future[str]:
        """The prepared container if it fits this request, else a new one (a future)."""
        entry = self._prepared.pop(request.job_id, None)
        if entry is None:
            return asyncio.ensure_future(asyncio.to_thread(self._create, request, limits, ws))
        prepared, made_for = entry
        fits = made_for == self._made_for(request, limits)

        async def settle() -> str:
            try:
                container: str | None = await prepared
            except Exception:  # noqa: BLE001 - a failed preparation is retried below
                container = None
            if container is not None and fits:
                return container
            if container is not None:
                await asyncio.to_thread(self._remove, container)
            return await asyncio.to_thread(self._create, request, limits, ws)

        return asyncio.ensure_future(settle())

    async def run(self, request: JobRequest, *, remove_later: bool = False) -> JobResult:
        """Run a job to its end.  Raises ``JobRefused`` before anything starts if refused.

        With ``remove_later`` the container's removal (an engine round trip) runs in the
        background after the result is known; ``wait_removed`` waits for it.
        """
        service = request.service
        limits = self._limits(request)
        if request.job_id in self._cancels:
            raise ServiceError(f"job {request.job_id!r} is already running")
        if len(self._cancels) >= self.policy.max_concurrent_jobs:
            raise JobRefused(f"executor busy: {len(self._cancels)} jobs running, "
                             f"at most {self.policy.max_concurrent_jobs}")
        ws = self.workspace(request.job_id, service)
        cancel_event = asyncio.Event()
        self._cancels[request.job_id] = (cancel_event, [])
        container: str | None = None
        started = time.monotonic()
        marks: list[tuple[str, float]] = [("begin", time.time())]
        try:
            create = self._container_for(request, limits, ws)
            try:
                container = await asyncio.shield(create)
            except asyncio.CancelledError:
                # Cancelled while the engine was creating it: learn its id, so the finally
                # below can remove it instead of leaving it for the next reap.
                with contextlib.suppress(Exception):
                    container = await asyncio.wait_for(create, 60)
                raise
            marks.append(("created", time.time()))
            return await self._drive(request, limits, ws, container, cancel_event, started,
                                     marks)
        finally:
            self._cancels.pop(request.job_id, None)
            if container is not None:
                removal = asyncio.ensure_future(asyncio.to_thread(self._remove, container))
                if remove_later:
                    self._track_removal(request.job_id, removal)
                else:
                    await asyncio.shield(removal)

    def _track_removal(self, job_id: str, removal: asyncio.Future[None]) -> None:
        self._removals[job_id] = removal

        def forget(done: asyncio.Future[None]) -> None:
            if self._removals.get(job_id) is done:
                del self._removals[job_id]
            if not done.cancelled() and done.exception() is not None:
                log.error("removing the container of job %s failed: %s", job_id,
                          done.exception())

        removal.add_done_callback(forget)

    def _create(self, request: JobRequest, limits: JobLimits, ws: Workspace) -> str:
        """Create the container (not started); returns its id.

        The low-level API is used on purpose: the high-level ``containers.create`` adds an
        inspect round trip per job, and this path is the per-job overhead.
        """
        binds = {}
        for cpath, host, direction in ws.items():
            if request.mounts is not None and cpath not in request.mounts:
                continue
            mode = "ro" if direction is MountDirection.INPUT else "rw"
            binds[str(host)] = {"bind": cpath, "mode": mode}
        log_config = LogConfig(type="json-file" if request.engine_logs else "none",
                               config={"max-size": "64m"} if request.engine_logs else {})
        image = request.service.image_digest
        api = self.client.api
        try:
            host_config = api.create_host_config(
                binds=binds, network_mode=limits.network or "none",
                mem_limit=limits.memory_bytes, memswap_limit=limits.memory_bytes,
                nano_cpus=limits.cpu_millis * 1_000_000, pids_limit=limits.pids,
                security_opt=["no-new-privileges"], cap_drop=["ALL"], privileged=False,
                log_config=log_config, read_only=self.policy.read_only_rootfs,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.policy.tmpfs_bytes}"}
                if self.policy.read_only_rootfs else None)
            created = api.create_container(
                image=image, command=list(request.command) if request.command else None,
                stdin_open=True, tty=False, environment=dict(request.env),
                user=f"{os.getuid()}:{os.getgid()}", volumes=[b["bind"] for b in binds.values()],
                labels={NODE_LABEL: str(self.node_id), JOB_LABEL: request.job_id,
                        "io.remote-network.service": request.service.id},
                name=f"rnn-{self.node_id.short}-{request.job_id}"[:128],
                host_config=host_config)
            return str(created["Id"])
        except docker.errors.ImageNotFound:
            raise ServiceError(f"service {request.service.name!r}: image {image} is not present "
                               f"on this executor") from None
        except docker.errors.APIError as exc:
            raise ServiceError(f"job {request.job_id}: cannot create its container "
                               f"({exc.explanation})") from None

    async def _drive(self, request: JobRequest, limits: JobLimits, ws: Workspace, container: str,
                     cancel_event: asyncio.Event, started: float,
                     marks: list[tuple[str, float]]) -> JobResult:
        loop = asyncio.get_running_loop()
        try:
            raw = await asyncio.to_thread(
                self.client.api.attach_socket, container,
                {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        except docker.errors.APIError as exc:
            raise ServiceError(f"job {request.job_id}: cannot attach to its container "
                               f"({exc.explanation})") from None
        sock: socket.socket = getattr(raw, "_sock", raw)
        marks.append(("attached", time.time()))
        pump = _StreamPump(sock, ws, self.policy.max_output_bytes, request.on_output, loop)
        ended_by: JobOutcome | None = None
        drained = False  # the reader saw the end of the streams: its hashes cover the files
        start_error: str | None = None
        try:
            reader = _in_thread(pump.run, f"job-{request.job_id}-out")
            try:
                await asyncio.to_thread(self.client.api.start, container)
            except docker.errors.APIError as exc:  # e.g. the command does not exist
                start_error = str(exc.explanation or exc)
            marks.append(("started", time.time()))
            if start_error is None:
                feeder = _in_thread(lambda: _feed_stdin(sock, request.stdin),
                                    f"job-{request.job_id}-in")
                waiter = _in_thread(lambda: self.client.api.wait(container, timeout=None),
                                    f"job-{request.job_id}-wait")
                cancelled = asyncio.ensure_future(cancel_event.wait())
                try:
                    done, _ = await asyncio.wait({waiter, cancelled}, timeout=limits.timeout_s,
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    cancelled.cancel()
                if waiter not in done:
                    ended_by = (JobOutcome.CANCELLED if cancel_event.is_set()
                                else JobOutcome.TIMED_OUT)
                    await asyncio.to_thread(self._kill, container)
                    await asyncio.wait_for(asyncio.shield(waiter), 30)
                marks.append(("exited", time.time()))
                # The stream ends when the container's stdout/stderr close; let it drain.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), 30)
                    drained = reader.exception() is None
                with contextlib.suppress(asyncio.TimeoutError, OSError):
                    await asyncio.wait_for(asyncio.shield(feeder), 5)
                marks.append(("drained", time.time()))
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with contextlib.suppress(Exception):
                raw.close()
        state = (await asyncio.to_thread(self._inspect, container)).get("State", {})
        marks.append(("inspected", time.time()))
        logs_path = None
        if request.engine_logs:
            logs_path = ws.logs_path
            await asyncio.to_thread(self._save_logs, container, logs_path)
        exit_code = state.get("ExitCode")
        if start_error is not None:
            outcome, explanation = JobOutcome.ERRORED, f"could not start: {start_error}"
        else:
            outcome, explanation = self._classify(ended_by, state, limits, request)
        if pump.truncated:
            explanation += f"; output truncated at {self.policy.max_output_bytes} bytes"
        outputs = {cpath: host for cpath, host, direction in ws.items()
                   if direction is not MountDirection.INPUT
                   and (request.mounts is None or cpath in request.mounts)}
        return JobResult(request.job_id, outcome, explanation,
                         exit_code if isinstance(exit_code, int) else None,
                         ws.stdout_path, ws.stderr_path, logs_path, outputs,
                         pump.counts[1], pump.counts[2], time.monotonic() - started,
                         tuple(marks), pump.hashes[1].digest() if drained else None,
                         pump.hashes[2].digest() if drained else None)

    def _classify(self, ended_by: JobOutcome | None, state: Mapping[str, Any], limits: JobLimits,
                  request: JobRequest) -> tuple[JobOutcome, str]:
        if ended_by is JobOutcome.CANCELLED:
            reasons = self._cancel_reasons(request.job_id)
            return JobOutcome.CANCELLED, f"{reasons}; the container was stopped and removed"
        if ended_by is JobOutcome.TIMED_OUT:
            return JobOutcome.TIMED_OUT, (f"ran longer than its {limits.timeout_s}s timeout; "
                                          f"the container was killed and removed")
        code = state.get("ExitCode")
        if state.get("OOMKilled"):
            return JobOutcome.OOM_KILLED, (f"killed for exceeding its memory limit of "
                                           f"{limits.memory_bytes} bytes (exit code {code})")
        if code == 0:
            return JobOutcome.COMPLETED, "exited with code 0"
        if isinstance(code, int) and code > 128:
            return JobOutcome.ERRORED, f"exited with code {code} (killed by signal {code - 128})"
        error = state.get("Error") or ""
        return JobOutcome.ERRORED, f"exited with code {code}" + (f" ({error})" if error else "")

    def _cancel_reasons(self, job_id: str) -> str:
        entry = self._cancels.get(job_id)
        return "; ".join(entry[1]) if entry and entry[1] else "cancelled"

    # blocking helpers (threads) ------------------------------------------------
    def _kill(self, container: str) -> None:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.api.kill(container)

    def _inspect(self, container: str) -> dict[str, Any]:
        try:
            return dict(self.client.api.inspect_container(container))
        except docker.errors.APIError:
            return {}

    def _save_logs(self, container: str, path: Path) -> None:
        with open(path, "wb") as handle:
            try:
                for chunk in self.client.api.logs(container, stdout=True, stderr=True,
                                                  timestamps=True, stream=True):
                    handle.write(chunk)
            except docker.errors.APIError as exc:
                handle.write(f"(engine logs unavailable: {exc.explanation})\n".encode())

    def _remove(self, container: str) -> None:
        for _attempt in range(3):
            try:
                self.client.api.remove_container(container, force=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                log.warning("removing container %s failed (%s); retrying", container[:12],
                            exc.explanation)
                time.sleep(0.2)
        log.error("container %s could not be removed; reap_leftovers will retry", container[:12])
