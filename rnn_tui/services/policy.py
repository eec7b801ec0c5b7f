"""Executor policy: may this peer run this service here, and with which limits?

Pure (no Docker): the runtime calls ``decide`` before it touches the engine, and the
node can call it to answer a remote request with a refusal and its reason.

Why refuse rather than clamp: a requirement is what the service needs to work.  Quietly
giving a job less memory than it declared turns a clear "this executor is too small" into
a confusing OOM later, so a requirement above a cap is a refusal that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnn_tui.errors import ServiceError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.model import Service, ServiceKind, VisibilityMode

__all__ = ["ExecutorPolicy", "JobLimits", "JobRefused", "decide"]

GiB = 1024 * 1024 * 1024


class JobRefused(ServiceError):
    """The executor will not run this job; ``reason`` says why, for the requester."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExecutorPolicy:
    """The host's caps.  Defaults suit a small shared machine."""

    max_cpu_millis: int = 2000
    max_memory_bytes: int = 2 * GiB
    max_pids: int = 512
    max_timeout_s: int = 3600
    allow_network: bool = False
    network: str = "bridge"
    max_output_bytes: int = 4 * GiB
    max_concurrent_jobs: int = 4
    #: May peers other than the owner replace the image's command?  Off: a service is the
    #: program its owner published, not a shell in their image.
    allow_command_override: bool = False
    #: Mount the image read-only, with a tmpfs ``/tmp`` (charged to the job's memory):
    #: a job then cannot fill the host's disk through its container layer.  Off by default
    #: because many images write outside ``/tmp``.
    read_only_rootfs: bool = False
    tmpfs_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class JobLimits:
    """What a job gets: never more than the policy allows."""

    cpu_millis: int
    memory_bytes: int
    pids: int
    network: str | None
    timeout_s: int


def decide(service: Service, requester: PeerId, policy: ExecutorPolicy,
           timeout_s: int | None = None, *, overrides_command: bool = False) -> JobLimits:
    """The job's limits, or ``JobRefused`` with a reason the requester can read."""
    vis = service.visibility
    if not vis.admits(requester, service.owner):
        if vis.mode is VisibilityMode.PRIVATE:
            raise JobRefused(f"service {service.name!r} is private to its owner")
        raise JobRefused(f"service {service.name!r} is restricted to an allowlist that does "
                         f"not include peer {requester.short}")
    if service.kind is not ServiceKind.DOCKER:
        raise JobRefused(f"service {service.name!r} is a {service.kind.value} service; "
                         f"only DOCKER services run in containers")
    if overrides_command and requester != service.owner and not policy.allow_command_override:
        raise JobRefused(f"service {service.name!r} runs its own command; this executor does "
                         f"not let other peers replace it")
    req = service.requirements
    for field, need, cap in (("cpu_millis", req.cpu_millis, policy.max_cpu_millis),
                             ("memory_bytes", req.memory_bytes, policy.max_memory_bytes),
                             ("pids", req.pids, policy.max_pids)):
        if need > cap:
            raise JobRefused(f"service {service.name!r} needs {field}={need}, above this "
                             f"executor's cap of {cap}")
    if req.network_needed and not policy.allow_network:
        raise JobRefused(f"service {service.name!r} needs network access, which this "
                         f"executor's policy does not allow")
    timeout = min(req.timeout_s, policy.max_timeout_s)
    if timeout_s is not None:
        if timeout_s < 1:
            raise JobRefused(f"job timeout {timeout_s}s must be at least 1s")
        timeout = min(timeout, timeout_s)
    return JobLimits(cpu_millis=req.cpu_millis, memory_bytes=req.memory_bytes, pids=req.pids,
                     network=policy.network if req.network_needed else None, timeout_s=timeout)
