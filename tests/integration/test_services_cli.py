"""The ``rnn services`` / ``rnn service`` / ``rnn images`` commands as real processes,
against a real control socket served by ``ServiceControl`` in this test's event loop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from rnn_tui.control.server import ControlServer
from rnn_tui.identity import Identity
from rnn_tui.services.control_api import ServiceControl
from rnn_tui.services.registry import InMemoryServiceRepository, ServiceRegistry

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


async def rnn(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rnn_tui", *args, cwd=REPO, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def node_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    registry = ServiceRegistry(InMemoryServiceRepository(), Identity(os.urandom(32)).peer_id,
                               clock=time.time)
    server = ControlServer(data / "control.sock")
    ServiceControl(registry).register(server)
    await server.start()
    yield data
    for service in await registry.list():
        await registry.remove(service.id)
    await server.close()


async def test_data_service_round_trip_through_the_cli(node_dir: Path, tmp_path: Path) -> None:
    data_file = tmp_path / "species.csv"
    data_file.write_text("apis mellifera\n")
    d = ["--data-dir", str(node_dir)]
    code, out, err = await rnn("service", "add", "--data", str(data_file), "--description",
                               "pollinators", "--memory", "64m", "--json", *d)
    assert code == 0, err
    added = json.loads(out)
    assert added["content_hash"].startswith("sha256:") and added["requirements"]["memory_bytes"] == 64 << 20

    code, out, err = await rnn("services", "--search", "pollinators", *d)
    assert code == 0 and added["id"][:12] in out and "species.csv" in out and "DATA" in out

    code, out, err = await rnn("service", "show", added["id"][:8], *d)
    assert code == 0 and "content hash" in out and "MOUNT /data (OUTPUT)" in out

    code, out, err = await rnn("service", "edit", added["id"], "--visibility", "private", "--json", *d)
    assert code == 0 and json.loads(out)["visibility"] == {"mode": "private"}

    code, out, err = await rnn("service", "rm", added["id"], *d)
    assert code == 0
    code, out, err = await rnn("services", "--json", *d)
    assert code == 0 and json.loads(out) == []


async def test_interface_flags_override_detection_over_the_socket(node_dir: Path,
                                                                  tmp_path: Path) -> None:
    data_dir = tmp_path / "tiles"
    data_dir.mkdir()
    (data_dir / "t.tif").write_bytes(b"II*\x00")
    d = ["--data-dir", str(node_dir)]
    code, out, err = await rnn("service", "add", "--data", str(data_dir), "--interface",
                               "MOUNT:/data:OUTPUT=the tiles", "--interface", "STDOUT=index",
                               "--json", *d)
    assert code == 0, err
    assert [(i["type"], i.get("path"), i.get("description")) for i in json.loads(out)["interfaces"]] \
        == [("MOUNT", "/data", "the tiles"), ("STDOUT", None, "index")]
    code, out, err = await rnn("service", "add", "--data", str(data_dir), "--name", "other",
                               "--no-detect", "--interface", "STDIN", *d)
    assert code == 0, err
    code, out, err = await rnn("services", "--json", *d)
    other = next(s for s in json.loads(out) if s["name"] == "other")
    assert [i["type"] for i in other["interfaces"]] == ["STDIN"]
    code, out, err = await rnn("service", "add", "--data", str(data_dir), "--name", "third",
                               "--drop-interface", "LOGS", *d)
    assert code == 1 and "--drop-interface 'LOGS': no such interface (there are: MOUNT:/data)" in err


async def test_errors_are_one_clear_line(node_dir: Path, tmp_path: Path) -> None:
    d = ["--data-dir", str(node_dir)]
    code, out, err = await rnn("service", "show", "ffffffff", *d)
    assert code == 1 and err.strip() == "error: no service with id 'ffffffff'"
    code, out, err = await rnn("service", "add", "--data", str(tmp_path / "missing"), *d)
    assert code == 1 and "cannot read data" in err and err.count("\n") == 1
    code, out, err = await rnn("service", "add", "--image", "x:1", "--username", "u", *d)
    assert code == 1 and "needs a password" in err
    code, out, err = await rnn("services", "--data-dir", str(tmp_path / "nowhere"))
    assert code == 1 and "no node is running" in err


@pytest.mark.docker
async def test_images_bootstrap_is_idempotent(docker_client) -> None:  # type: ignore[no-untyped-def]
    tag = f"rnn-test/cli-base:{os.getpid()}"
    try:
        code, first, err = await rnn("images", "bootstrap", "--tag", tag)
        assert code == 0, err
        code, second, err = await rnn("images", "bootstrap", "--tag", tag)
        assert code == 0 and first == second and first.startswith(f"{tag} sha256:")
        output = docker_client.containers.run(tag, ["sh", "-c", "echo $((6 * 7))"], remove=True,
                                              network_mode="none")
        assert output == b"42\n"
    finally:
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:
            pass


async def test_remote_listing_streams_json_lines(tmp_path: Path) -> None:
    from rnn_tui.services.model import Service, ServiceKind

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    me = Identity(os.urandom(32)).peer_id
    peer = Identity(os.urandom(32)).peer_id
    control = ServiceControl(ServiceRegistry(InMemoryServiceRepository(), me, clock=time.time))
    control.cache.update(peer, [Service.new(peer, "far-away", ServiceKind.DOCKER, 1,
                                            image_digest="sha256:" + "e" * 64)], time.time())
    server = ControlServer(data / "control.sock")
    control.register(server)
    await server.start()
    try:
        code, out, err = await rnn("services", "--remote", "--json", "--data-dir", str(data))
        assert code == 0, err
        items = [json.loads(line) for line in out.splitlines()]
        assert [(i["peer"], i["service"]["name"], i["cached"]) for i in items] == [
            (str(peer), "far-away", True)]
        code, out, err = await rnn("services", "--remote", "--search", "nothing-like-it",
                                   "--data-dir", str(data))
        assert code == 0 and "no matching services" in out
    finally:
        await server.close()
