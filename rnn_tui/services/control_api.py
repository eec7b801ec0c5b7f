"""Control API methods for services: what ``rnn services`` / ``rnn service ...`` call.

The node creates one ``ServiceControl`` and calls ``register(control_server)``.  Every
method takes the JSON ``params`` of a control request and returns JSON-able data; bad
params raise ``ServiceError``/``ServiceSpecError`` naming the parameter, which the control
server turns into an error reply.

Methods:
    services.list     {phrase?, kind?, interface?}          -> [service dict]
    services.remote   {phrase?, kind?, interface?, timeout?} -> stream of
                      {"peer": id, "service": dict} | {"peer": id, "error": text}
    service.add       {image | local_image | git (+ref, dockerfile) | dockerfile_dir
                       (+dockerfile) | data, name?, description?, version?, visibility?,
                       allow?, cpu_millis?, memory_bytes?, pids?, network?, timeout_s?,
                       interfaces? (JSON/YAML text), interface_add? ([TYPE[:PATH[:DIR]][=DESC]]),
                       interface_drop? ([port key]), no_detect?, username?, password?, server?}
                      -> service dict
    service.show      {id} -> service dict
    service.edit      {id, description?, version?, visibility?, allow?, interfaces?,
                       cpu_millis?, memory_bytes?, pids?, network?, timeout_s?} -> dict
    service.rm        {id} -> service dict
    service.verify    {id} -> service dict (DATA: re-hash and compare)

Paths in params must be absolute: the node's working directory is not the CLI's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from rnn_tui.errors import ServiceError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.docker_images import RegistryCredentials
from rnn_tui.services.interface_edits import InterfaceEdits, parse_interface_spec
from rnn_tui.services.interfaces import parse_interfaces_label
from rnn_tui.services.model import Requirements, ServiceSpecError, Visibility, VisibilityMode
from rnn_tui.services.registry import ServiceOptions, ServiceRegistry
from rnn_tui.services.remote import Ask, RemoteCatalogCache, fan_out_search
from rnn_tui.services.search import SearchQuery, search

__all__ = ["ServiceControl", "options_from_params", "query_from_params"]

_SOURCES = ("image", "local_image", "git", "dockerfile_dir", "data")


class _Server(Protocol):
    def register(self, method: str, handler: Any) -> None: ...
    def register_stream(self, method: str, handler: Any) -> None: ...


def _str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ServiceSpecError(f"parameter {key!r}: expected non-empty text")
    return value


def _text_or_none(params: dict[str, Any], key: str) -> str | None:
    """Like ``_str`` but empty text is allowed (a description may be cleared)."""
    value = params.get(key)
    if value is not None and not isinstance(value, str):
        raise ServiceSpecError(f"parameter {key!r}: expected text")
    return value


def _int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ServiceSpecError(f"parameter {key!r}: expected an integer, got {value!r}")
    return value


def _abs_path(params: dict[str, Any], key: str) -> Path | None:
    value = _str(params, key)
    if value is None:
        return None
    if not value.startswith("/"):
        raise ServiceSpecError(f"parameter {key!r}: {value!r} must be an absolute path")
    return Path(value)


def _visibility(params: dict[str, Any], current: Visibility | None = None) -> Visibility | None:
    mode_text = _str(params, "visibility")
    allow = params.get("allow")
    if mode_text is None and allow is None:
        return current
    if allow is not None and (not isinstance(allow, list) or not all(isinstance(a, str) for a in allow)):
        raise ServiceSpecError("parameter 'allow': expected a list of peer ids")
    try:
        peers = frozenset(PeerId.parse(a) for a in allow or [])
    except ValueError as exc:
        raise ServiceSpecError(f"parameter 'allow': {exc}") from None
    if mode_text is None:
        mode = VisibilityMode.ALLOWLIST if peers else (current.mode if current else VisibilityMode.PUBLIC)
    else:
        try:
            mode = VisibilityMode(mode_text.lower())
        except ValueError:
            raise ServiceSpecError(f"parameter 'visibility': {mode_text!r} is not public, "
                                   f"allowlist or private") from None
    if mode is VisibilityMode.ALLOWLIST and not peers:
        raise ServiceSpecError("visibility 'allowlist' needs at least one --allow PEER")
    return Visibility(mode, peers if mode is VisibilityMode.ALLOWLIST else frozenset())


def _requirements(params: dict[str, Any], base: Requirements) -> Requirements:
    changes: dict[str, Any] = {}
    for key in ("cpu_millis", "memory_bytes", "pids", "timeout_s"):
        value = _int(params, key)
        if value is not None:
            changes[key] = value
    if params.get("network") is not None:
        if not isinstance(params["network"], bool):
            raise ServiceSpecError("parameter 'network': expected true or false")
        changes["network_needed"] = params["network"]
    return replace(base, **changes) if changes else base


def options_from_params(params: dict[str, Any]) -> ServiceOptions:
    interfaces_text = _str(params, "interfaces")
    return ServiceOptions(
        name=_str(params, "name"), description=_text_or_none(params, "description"),
        version=_str(params, "version"),
        interfaces=parse_interfaces_label(interfaces_text, "parameter 'interfaces'")
        if interfaces_text else None,
        interface_edits=_interface_edits(params),
        requirements=_requirements(params, Requirements()),
        visibility=_visibility(params) or Visibility())


def _interface_edits(params: dict[str, Any]) -> InterfaceEdits | None:
    """``interface_add``/``interface_drop``/``no_detect`` (the CLI's ``--interface`` flags)."""
    lists: dict[str, list[str]] = {}
    for key in ("interface_add", "interface_drop"):
        value = params.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ServiceSpecError(f"parameter {key!r}: expected a list of strings")
        lists[key] = value
    no_detect = params.get("no_detect", False)
    if not isinstance(no_detect, bool):
        raise ServiceSpecError("parameter 'no_detect': expected true or false")
    if not lists["interface_add"] and not lists["interface_drop"] and not no_detect:
        return None
    added = tuple(parse_interface_spec(v, "--interface") for v in lists["interface_add"])
    return InterfaceEdits(added, tuple(lists["interface_drop"]), detect=not no_detect)


def query_from_params(params: dict[str, Any]) -> SearchQuery:
    return SearchQuery.from_dict({k: params[k] for k in ("phrase", "kind", "interface", "limit")
                                  if params.get(k) is not None})


class ServiceControl:
    """Control handlers over one registry, plus remote search when the node provides it.

    ``peers`` lists connected peers; ``ask(peer, ServiceSearchQuery)`` sends a request over
    the transport and returns the decoded reply.  Both stay ``None`` until the transport is
    wired; ``services.remote`` then answers from the gossip cache only.
    """

    def __init__(self, registry: ServiceRegistry, *, cache: RemoteCatalogCache | None = None,
                 peers: Callable[[], list[PeerId]] | None = None, ask: Ask | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.cache = cache or RemoteCatalogCache()
        self.peers = peers
        self.ask = ask
        self.clock = clock

    def register(self, server: _Server) -> None:
        server.register("services.list", self.list)
        server.register_stream("services.remote", self.remote)
        for name in ("add", "show", "edit", "rm", "verify"):
            server.register(f"service.{name}", getattr(self, name))

    async def list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        services = await self.registry.list()
        return [s.to_dict() for s in search(services, query_from_params(params))]

    async def remote(self, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        query = query_from_params(params)
        timeout = params.get("timeout", 5.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
            raise ServiceSpecError("parameter 'timeout': expected seconds in (0, 60]")
        seen: set[str] = set()
        if self.ask is not None and self.peers is not None:
            async for answer in fan_out_search(self.peers(), self.ask, query, timeout_s=float(timeout)):
                if answer.error is not None:
                    yield {"peer": str(answer.peer), "error": answer.error}
                    continue
                self.cache.update(answer.peer, answer.services, self.clock())
                for service in answer.services:
                    seen.add(service.id)
                    yield {"peer": str(answer.peer), "service": service.to_dict(public=True)}
        for service in self.cache.search(query, self.clock()):
            if service.id not in seen:
                yield {"peer": str(service.owner), "service": service.to_dict(public=True),
                       "cached": True}

    async def add(self, params: dict[str, Any]) -> dict[str, Any]:
        given = [key for key in _SOURCES if params.get(key) is not None]
        if len(given) != 1:
            raise ServiceSpecError(f"give exactly one source of {list(_SOURCES)}; got {given or 'none'}")
        options = options_from_params(params)
        source = given[0]
        if source == "image":
            ref = _str(params, "image")
            assert ref is not None
            username, password = _str(params, "username"), params.get("password")
            credentials = None
            if username is not None:
                if not isinstance(password, str):
                    raise ServiceSpecError("parameter 'password': needed with 'username'")
                credentials = RegistryCredentials(username, password, _str(params, "server"))
            service = await self.registry.add_from_image(ref, options, credentials=credentials)
        elif source == "local_image":
            ref = _str(params, "local_image")
            assert ref is not None
            service = await self.registry.add_local_image(ref, options)
        elif source == "git":
            url = _str(params, "git")
            assert url is not None
            service = await self.registry.add_from_git(
                url, _str(params, "ref") or "HEAD", _str(params, "dockerfile") or "Dockerfile", options)
        elif source == "dockerfile_dir":
            directory = _abs_path(params, "dockerfile_dir")
            assert directory is not None
            service = await self.registry.add_from_dockerfile_dir(
                directory, _str(params, "dockerfile") or "Dockerfile", options)
        else:
            path = _abs_path(params, "data")
            assert path is not None
            service = await self.registry.add_data(path, options)
        return service.to_dict()

    def _id(self, params: dict[str, Any]) -> str:
        sid = _str(params, "id")
        if sid is None:
            raise ServiceError("parameter 'id' is required")
        return sid

    async def show(self, params: dict[str, Any]) -> dict[str, Any]:
        return (await self.registry.get(self._id(params))).to_dict()

    async def edit(self, params: dict[str, Any]) -> dict[str, Any]:
        service = await self.registry.get(self._id(params))
        changes: dict[str, Any] = {}
        description = _text_or_none(params, "description")
        if description is not None:
            changes["description"] = description
        if _str(params, "version") is not None:
            changes["version"] = params["version"]
        visibility = _visibility(params, service.visibility)
        if visibility != service.visibility:
            changes["visibility"] = visibility
        requirements = _requirements(params, service.requirements)
        if requirements != service.requirements:
            changes["requirements"] = requirements
        text = _str(params, "interfaces")
        if text is not None:
            changes["interfaces"] = parse_interfaces_label(text, "parameter 'interfaces'")
        if not changes:
            raise ServiceSpecError("nothing to change: give at least one field to edit")
        return (await self.registry.update(service.id, **changes)).to_dict()

    async def rm(self, params: dict[str, Any]) -> dict[str, Any]:
        return (await self.registry.remove(self._id(params))).to_dict()

    async def verify(self, params: dict[str, Any]) -> dict[str, Any]:
        return (await self.registry.verify_data(self._id(params))).to_dict()
