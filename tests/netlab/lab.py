"""A NAT lab built from Linux network namespaces, veth pairs and nftables routers.

Why: NAT traversal can only be proven against real NAT behaviour.  The kernel's conntrack
and nftables give us two NAT types that matter in the wild (see FACTS.md, "NAT lab"):

* ``NatMode.EIM``: endpoint-independent mapping with address-and-port-dependent
  filtering -- a typical home router.  ``snat`` keeps the source port, and a dynamic map
  from source port to the LAN (address, port) lets a prerouting ``dnat`` steer inbound
  packets to the right host.
* ``NatMode.SYMMETRIC``: endpoint-dependent mapping (``masquerade random``): every new
  destination gets a fresh random external port.

Both drop unsolicited WAN packets in the *forward and the input* chain, accepting only
``ct state established,related``.  Without the input-chain drop, an early inbound punch
packet confirms a conntrack entry on the router itself, which steals the port and breaks
port preservation (the trap FACTS.md describes).

Topology (every namespace is created by the lab and named ``<prefix>-<suffix>-<role>``)::

    [pub host 203.0.113.2..]──┐
                              ├── br0 in the "inet" namespace (203.0.113.0/24, TEST-NET-3)
    [router A: wan 203.0.113.10x]──┘
        └── lanbr 10.<k>.0.1/24 ── [host 10.<k>.0.2], [host 10.<k>.0.3] ...

Traffic never leaves namespaces this lab created: none of them has a route to the host's
real network, and the root namespace is never touched (veths are created directly inside
their namespaces with ``ip -n``).

Lifecycle: use ``with NatLab() as lab:``.  ``close()`` kills every process started through
the lab by its PID, then deletes every namespace it created, even when a step failed half way.
"""

from __future__ import annotations

import enum
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NatLab", "NatMode", "LabHost", "LabRouter", "lab_unavailable_reason", "PUBLIC_NET"]

PUBLIC_NET = "203.0.113"  # TEST-NET-3: documentation range, never routed anywhere real
_PUBLIC_PREFIX = 24
_REPO_ROOT = Path(__file__).resolve().parents[2]


class NatMode(enum.Enum):
    EIM = "eim"  # endpoint-independent mapping, address-and-port-dependent filtering
    SYMMETRIC = "symmetric"  # endpoint-dependent mapping (masquerade random)


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None when it can (root, ``ip netns``, ``nft``)."""
    if os.geteuid() != 0:
        return "the NAT lab needs root (network namespaces and nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the NAT lab needs the {tool!r} command (iproute2 / nftables)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"'ip netns' is unavailable: {probe.stderr.strip()}"
    return None


class LabError(RuntimeError):
    """A lab setup command failed; the message carries the command and its stderr."""


def _run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 20.0) -> str:
    proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"lab command failed ({proc.returncode}): {' '.join(argv)}\n"
                       f"{proc.stderr.strip()}")
    return proc.stdout


@dataclass
class LabHost:
    """A namespace with one address, able to run processes inside it."""

    lab: NatLab
    netns: str
    ip: str
    router: LabRouter | None = None

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        """Start ``argv`` inside this namespace; the lab kills it by PID on close."""
        return self.lab._popen(self.netns, argv, **kwargs)

    def run(self, argv: Sequence[str], timeout: float = 20.0) -> str:
        return _run(["ip", "netns", "exec", self.netns, *argv], timeout=timeout)

    def python(self, args: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        """Run the repo's Python (same venv as the tests) with ``args`` in this namespace."""
        return self.popen([sys.executable, *args], **kwargs)


@dataclass
class LabRouter:
    """A NAT router: ``wan`` on the internet bridge, ``lanbr`` towards its hosts."""

    lab: NatLab
    netns: str
    mode: NatMode
    wan_ip: str
    lan_prefix: str  # e.g. "10.3.0"
    hosts: list[LabHost] = field(default_factory=list)

    def conntrack_udp_entries(self) -> int:
        """How many UDP flows the router tracks (for diagnostics in failing tests)."""
        try:
            out = _run(["ip", "netns", "exec", self.netns, "cat", "/proc/net/nf_conntrack"])
        except (LabError, FileNotFoundError):
            return -1
        return sum(1 for line in out.splitlines() if " udp " in f" {line} ")


def _nft_ruleset(mode: NatMode, wan_ip: str) -> str:
    """The router's whole nftables ruleset, in its own table (flushed on namespace delete)."""
    if mode is NatMode.EIM:
        nat = f"""
  map eim {{
    type inet_service : ipv4_addr . inet_service
    flags dynamic,timeout
    timeout 300s
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "wan" dnat ip to udp dport map @eim
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" meta l4proto udp update @eim {{ udp sport : ip saddr . udp sport }}
    oifname "wan" snat ip to {wan_ip}
  }}"""
    else:
        nat = """
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade random
  }"""
    return f"""table ip rnnlab {{{nat}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lanbr" accept
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }}
}}
"""


class NatLab:
    """Builds and tears down one lab.  Not thread-safe; one lab per test."""

    def __init__(self, prefix: str = "rnnlab") -> None:
        reason = lab_unavailable_reason()
        if reason is not None:
            raise LabError(reason)
        self.name = f"{prefix}-{secrets.token_hex(3)}"
        self.inet_ns = f"{self.name}-inet"
        self._namespaces: list[str] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._next_public = 2
        self._next_router_public = 100
        self._next_lan = 1
        self.routers: list[LabRouter] = []
        self.hosts: list[LabHost] = []
        self._closed = False
        try:
            self._add_ns(self.inet_ns)
            self._ip(self.inet_ns, "link", "add", "br0", "type", "bridge")
            self._ip(self.inet_ns, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> NatLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building --------------------------------------------------------------------
    def add_public_host(self) -> LabHost:
        """A host with a public address directly on the internet bridge (no NAT)."""
        ip = f"{PUBLIC_NET}.{self._next_public}"
        self._next_public += 1
        ns = self._new_ns(f"pub{len(self.hosts)}")
        self._attach_to_internet(ns, "eth0", ip)
        host = LabHost(self, ns, ip)
        self.hosts.append(host)
        return host

    def add_nat(self, mode: NatMode) -> LabRouter:
        """A NAT router of the given mode with an empty LAN (add hosts with add_host_behind)."""
        wan_ip = f"{PUBLIC_NET}.{self._next_router_public}"
        self._next_router_public += 1
        lan_prefix = f"10.{self._next_lan}.0"
        self._next_lan += 1
        ns = self._new_ns(f"r{len(self.routers)}")
        self._attach_to_internet(ns, "wan", wan_ip)
        self._ip(ns, "link", "add", "lanbr", "type", "bridge")
        self._ip(ns, "addr", "add", f"{lan_prefix}.1/24", "dev", "lanbr")
        self._ip(ns, "link", "set", "lanbr", "up")
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input_text=_nft_ruleset(mode, wan_ip))
        router = LabRouter(self, ns, mode, wan_ip, lan_prefix)
        self.routers.append(router)
        return router

    def add_host_behind(self, router: LabRouter) -> LabHost:
        index = len(router.hosts)
        ns = self._new_ns(f"r{self.routers.index(router)}h{index}")
        ip = self._plug(ns, router)
        host = LabHost(self, ns, ip, router)
        router.hosts.append(host)
        self.hosts.append(host)
        return host

    def move_host(self, host: LabHost, router: LabRouter) -> str:
        """Unplug ``host`` and plug it into ``router``'s LAN (a laptop changing networks).

        Its processes keep running; its LAN address, default route and external address
        (the new router's WAN) change.  Returns the new LAN address.
        """
        if host.router is None or host.router is router:
            raise LabError(f"{host.netns}: only a NATed host can move, to another router")
        self._ip(host.netns, "link", "del", "eth0")  # removes the old router's end too
        host.router.hosts.remove(host)
        host.ip = self._plug(host.netns, router)
        host.router = router
        router.hosts.append(host)
        return host.ip

    def _plug(self, ns: str, router: LabRouter) -> str:
        """A veth from ``ns`` into ``router``'s LAN bridge; returns the host's new address."""
        used = {h.ip for h in router.hosts}
        ip = next(f"{router.lan_prefix}.{i}" for i in range(2, 255)
                  if f"{router.lan_prefix}.{i}" not in used)
        port = f"h{ip.rsplit('.', 1)[1]}"
        self._ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns",
                 router.netns)
        self._ip(router.netns, "link", "set", port, "master", "lanbr")
        self._ip(router.netns, "link", "set", port, "up")
        self._ip(ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        self._ip(ns, "link", "set", "eth0", "up")
        self._ip(ns, "route", "add", "default", "via", f"{router.lan_prefix}.1")
        return ip

    # -- processes -------------------------------------------------------------------
    def _popen(self, netns: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        if self._closed:
            raise LabError("the lab is closed")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        opts: dict[str, object] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE,
                                   "stderr": subprocess.PIPE, "text": True, "env": env,
                                   "bufsize": 1}
        opts.update(kwargs)
        proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            ["ip", "netns", "exec", netns, *argv], **opts)
        self._procs.append(proc)
        return proc

    # -- teardown --------------------------------------------------------------------
    def close(self) -> None:
        """Kill every process we started (by PID), then delete every namespace we made."""
        if self._closed:
            return
        self._closed = True
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 3.0
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        errors = []
        for ns in reversed(self._namespaces):
            res = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if res.returncode != 0:
                errors.append(f"{ns}: {res.stderr.strip()}")
        self._namespaces.clear()
        if errors:
            raise LabError("could not delete lab namespaces: " + "; ".join(errors))

    # -- helpers ---------------------------------------------------------------------
    def _new_ns(self, role: str) -> str:
        ns = f"{self.name}-{role}"
        self._add_ns(ns)
        return ns

    def _add_ns(self, ns: str) -> None:
        _run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        self._ip(ns, "link", "set", "lo", "up")

    def _attach_to_internet(self, ns: str, ifname: str, ip: str) -> None:
        port = f"p{len(self._namespaces)}"
        self._ip(ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns",
                 self.inet_ns)
        self._ip(self.inet_ns, "link", "set", port, "master", "br0")
        self._ip(self.inet_ns, "link", "set", port, "up")
        self._ip(ns, "addr", "add", f"{ip}/{_PUBLIC_PREFIX}", "dev", ifname)
        self._ip(ns, "link", "set", ifname, "up")

    @staticmethod
    def _ip(ns: str, *args: str) -> None:
        _run(["ip", "-n", ns, *args])

    def namespaces(self) -> list[str]:
        return list(self._namespaces)
