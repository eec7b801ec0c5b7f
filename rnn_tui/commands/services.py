"""``rnn services``, ``rnn service add|show|edit|rm|verify`` and ``rnn images bootstrap``.

Service commands talk to the running node over the control socket (methods documented in
``rnn_tui.services.control_api``): the registry lives in the node's store, and builds run
where the images will run.  ``rnn images bootstrap`` needs only the Docker engine, so it
runs here, without a node.

Registry passwords are read from ``--password-stdin`` or ``RNN_REGISTRY_PASSWORD``, never
from the command line (where ``ps`` would show them), and only cross the owner-only
control socket.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rnn_tui.commands.common import control_call, control_stream, print_json, print_table
from rnn_tui.errors import ServiceError

__all__ = ["register"]


def register(sub: Any) -> None:
    services = sub.add_parser("services", help="list or search services (local or across the network)")
    services.add_argument("--remote", action="store_true", help="search connected peers too")
    services.add_argument("--search", metavar="PHRASE", help="words that must all match")
    services.add_argument("--kind", choices=["DOCKER", "DATA", "STANDALONE"], type=str.upper)
    services.add_argument("--interface", choices=["STDIN", "STDOUT", "STDERR", "LOGS", "MOUNT"],
                          type=str.upper, help="only services offering this interface")
    services.add_argument("--timeout", type=float, default=5.0, help="seconds to wait per peer")
    services.add_argument("--json", action="store_true", help="print JSON")
    services.set_defaults(func=cmd_services)

    service = sub.add_parser("service", help="add, show, edit or remove one service")
    ssub = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)

    add = ssub.add_parser("add", help="register a Docker or DATA service")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="REF", help="pull REF from its registry")
    source.add_argument("--local-image", metavar="REF", help="use an image already in the engine")
    source.add_argument("--git", metavar="URL", help="clone URL (https, ssh, git, file) and build")
    source.add_argument("--dockerfile-dir", metavar="DIR", help="build DIR (the context)")
    source.add_argument("--data", metavar="PATH", help="publish a file or directory as DATA")
    add.add_argument("--ref", default="HEAD", help="Git branch, tag or commit (with --git)")
    add.add_argument("--dockerfile", default="Dockerfile",
                     help="Dockerfile path inside the repo or context (default: Dockerfile)")
    add.add_argument("--username", help="registry user (with --image)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the registry password from stdin (or set RNN_REGISTRY_PASSWORD)")
    add.add_argument("--registry", dest="server", help="registry server for the credentials")
    add.add_argument("--interface", action="append", dest="interface_add", metavar="SPEC",
                     help="add or override an interface: TYPE[:PATH[:DIRECTION]][=DESCRIPTION], "
                          "e.g. MOUNT:/data/in:INPUT (repeat; a MOUNT defaults to BOTH)")
    add.add_argument("--drop-interface", action="append", dest="interface_drop", metavar="KEY",
                     help="drop a detected interface, e.g. MOUNT:/app or LOGS (repeat)")
    add.add_argument("--no-detect", action="store_true",
                     help="ignore detected interfaces: only the --interface ones")
    _common_fields(add)
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)

    show = ssub.add_parser("show", help="show one service (id or unique prefix)")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_simple("service.show"))

    edit = ssub.add_parser("edit", help="edit description, version, visibility, limits, interfaces")
    edit.add_argument("id")
    _common_fields(edit, with_name=False)
    edit.add_argument("--json", action="store_true")
    edit.set_defaults(func=cmd_edit)

    rm = ssub.add_parser("rm", help="remove a service (and the image built for it)")
    rm.add_argument("id")
    rm.add_argument("--json", action="store_true")
    rm.set_defaults(func=_simple("service.rm"))

    verify = ssub.add_parser("verify", help="re-hash a DATA service and compare")
    verify.add_argument("id")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_simple("service.verify"))

    images = sub.add_parser("images", help="local images for services")
    isub = images.add_subparsers(dest="images_command", metavar="ACTION", required=True)
    boot = isub.add_parser("bootstrap", help="build the busybox base image offline (docker import)")
    boot.add_argument("--tag", default=None, help="image tag (default rnn/base:latest)")
    boot.add_argument("--force", action="store_true", help="re-import even if up to date")
    boot.set_defaults(func=cmd_images_bootstrap)


def _common_fields(parser: argparse.ArgumentParser, *, with_name: bool = True) -> None:
    if with_name:
        parser.add_argument("--name", help="service name (default: from the source)")
    parser.add_argument("--description")
    parser.add_argument("--version", dest="svc_version")
    parser.add_argument("--visibility", choices=["public", "allowlist", "private"])
    parser.add_argument("--allow", action="append", metavar="PEER",
                        help="peer id allowed to see and run it (repeat; implies allowlist)")
    parser.add_argument("--cpu", type=float, metavar="CORES", help="CPU cores needed (e.g. 0.5)")
    parser.add_argument("--memory", metavar="SIZE", help="memory needed (e.g. 256m, 1g)")
    parser.add_argument("--pids", type=int, help="processes needed")
    parser.add_argument("--timeout", type=int, dest="timeout_s", help="wall-clock seconds per job")
    parser.add_argument("--network", action=argparse.BooleanOptionalAction, default=None,
                        help="the service needs network access (executors may refuse)")
    parser.add_argument("--interfaces", metavar="FILE",
                        help="JSON/YAML file with the interface list (overrides detection)")


def parse_size(text: str) -> int:
    """``256m`` → bytes; k/m/g are powers of 1024."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    raw = text.strip().lower().removesuffix("b")
    factor = units.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        return int(float(number) * factor)
    except ValueError:
        raise ServiceError(f"--memory {text!r}: expected a size like 512m or 2g") from None


def _field_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, dest in (("name", "name"), ("description", "description"),
                      ("version", "svc_version"), ("visibility", "visibility"),
                      ("allow", "allow"), ("pids", "pids"), ("timeout_s", "timeout_s"),
                      ("network", "network")):
        value = getattr(args, dest, None)
        if value is not None:
            params[key] = value
    if getattr(args, "cpu", None) is not None:
        params["cpu_millis"] = round(args.cpu * 1000)
    if getattr(args, "memory", None):
        params["memory_bytes"] = parse_size(args.memory)
    if getattr(args, "interfaces", None):
        try:
            with open(args.interfaces, encoding="utf-8") as handle:
                params["interfaces"] = handle.read()
        except OSError as exc:
            raise ServiceError(f"--interfaces {args.interfaces}: {exc.strerror}") from None
    return params


def _abs(path: str) -> str:
    return os.path.abspath(path)


def _interface_params(args: argparse.Namespace) -> dict[str, Any]:
    """Checked here first, so a typo fails before any pull or build starts on the node."""
    from rnn_tui.services.interface_edits import InterfaceEdits, parse_interface_spec

    added = tuple(parse_interface_spec(spec) for spec in args.interface_add or [])
    InterfaceEdits(added, tuple(args.interface_drop or []), detect=not args.no_detect)
    params: dict[str, Any] = {}
    if args.interface_add:
        params["interface_add"] = list(args.interface_add)
    if args.interface_drop:
        params["interface_drop"] = list(args.interface_drop)
    if args.no_detect:
        params["no_detect"] = True
    return params


def cmd_add(args: argparse.Namespace) -> int:
    params = _field_params(args)
    params.update(_interface_params(args))
    if args.image:
        params["image"] = args.image
        if args.username:
            params["username"] = args.username
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin \
                else os.environ.get("RNN_REGISTRY_PASSWORD")
            if not password:
                raise ServiceError("--username needs a password: --password-stdin or "
                                   "RNN_REGISTRY_PASSWORD")
            params["password"] = password
            if args.server:
                params["server"] = args.server
    elif args.local_image:
        params["local_image"] = args.local_image
    elif args.git:
        params.update(git=args.git, ref=args.ref, dockerfile=args.dockerfile)
    elif args.dockerfile_dir:
        params.update(dockerfile_dir=_abs(args.dockerfile_dir), dockerfile=args.dockerfile)
    else:
        params["data"] = _abs(args.data)
    service = control_call(args, "service.add", params, timeout=1800.0)
    _print_service(args, service)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    params = _field_params(args)
    params["id"] = args.id
    _print_service(args, control_call(args, "service.edit", params))
    return 0


def _simple(method: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        _print_service(args, control_call(args, method, {"id": args.id}, timeout=600.0))
        return 0

    return run


def cmd_services(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {}
    if args.search:
        query["phrase"] = args.search
    if args.kind:
        query["kind"] = args.kind
    if args.interface:
        query["interface"] = args.interface
    if not args.remote:
        services = control_call(args, "services.list", query)
        if args.json:
            print_json(services)
        else:
            _print_table(services)
        return 0
    query["timeout"] = args.timeout
    rows = []
    for item in control_stream(args, "services.remote", query):
        if args.json:
            print(json.dumps(item, sort_keys=True), flush=True)  # JSON lines, as they arrive
        elif "error" in item:
            print(f"peer {item['peer'][:10]}: {item['error']}", file=sys.stderr)
        else:
            rows.append(item["service"])
            _print_table([item["service"]], header=len(rows) == 1)
    if not args.json and not rows:
        print("no matching services on connected peers")
    return 0


def _interfaces_text(service: dict[str, Any]) -> str:
    out = []
    for iface in service.get("interfaces", []):
        if iface.get("type") == "MOUNT":
            out.append(f"MOUNT:{iface.get('path')}({iface.get('direction', '?')[0]})")
        else:
            out.append(str(iface.get("type")))
    return ",".join(out)


def _print_table(services: list[dict[str, Any]], header: bool = True) -> None:
    rows = [[s["id"][:12], s["name"], s["kind"], s.get("version", ""),
             s.get("visibility", {}).get("mode", ""), s["owner"][:10], _interfaces_text(s)]
            for s in services]
    if not rows and header:
        print("no services")
        return
    if header:
        print_table(["ID", "NAME", "KIND", "VERSION", "VISIBILITY", "OWNER", "INTERFACES"], rows)
    else:
        for row in rows:
            print("  ".join(row))


def _print_service(args: argparse.Namespace, service: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        print_json(service)
        return
    req = service.get("requirements", {})
    vis = service.get("visibility", {})
    lines = [
        ("id", service["id"]), ("name", service["name"]), ("kind", service["kind"]),
        ("version", service.get("version", "")), ("owner", service["owner"]),
        ("description", service.get("description", "")),
        ("visibility", vis.get("mode", "") + (f" {', '.join(vis['allowlist'])}" if vis.get("allowlist") else "")),
        ("requirements", f"cpu {req.get('cpu_millis', 0) / 1000:g} cores, memory "
                         f"{req.get('memory_bytes', 0) >> 20} MiB, pids {req.get('pids')}, "
                         f"timeout {req.get('timeout_s')}s, network "
                         f"{'needed' if req.get('network_needed') else 'none'}"),
    ]
    for key in ("image_ref", "image_digest", "content_hash", "data_path", "source"):
        if service.get(key):
            lines.append((key.replace("_", " "), str(service[key])))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    print("interfaces:")
    for iface in service.get("interfaces", []):
        where = f" {iface['path']} ({iface['direction']})" if iface.get("type") == "MOUNT" else ""
        desc = f"  - {iface['description']}" if iface.get("description") else ""
        print(f"  {iface['type']}{where}{desc}")


def cmd_images_bootstrap(args: argparse.Namespace) -> int:
    import docker
    import docker.errors

    from rnn_tui.services.images import BASE_IMAGE, bootstrap_base_image

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ServiceError(f"cannot reach the Docker engine ({exc})") from None
    tag = args.tag or BASE_IMAGE
    image_id = bootstrap_base_image(client, tag, force=args.force)
    print(f"{tag} {image_id}")
    return 0
