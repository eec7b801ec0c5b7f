"""The real node failing to start is shown in the app with its reason, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import rnn_env

pytestmark = [pytest.mark.tui, pytest.mark.integration]


def real_app(home: Path, monkeypatch: pytest.MonkeyPatch, port: int, passphrase: str):  # type: ignore[no-untyped-def]
    from rnn_tui.config import load_config
    from rnn_tui.facade import NodeFacadeImpl
    from rnn_tui.node import Node
    from rnn_tui.tui.app import RnnApp

    for sub in ("config", "data", "cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    for key, value in rnn_env(home).items():
        monkeypatch.setenv(key, value)
    secret = home / "pass"
    secret.write_text(passphrase + "\n")
    secret.chmod(0o600)
    config = load_config(flags={"data_dir": str(home / "node"), "port": port,
                                "listen_host": "127.0.0.1", "bootstrap": "",
                                "passphrase_file": str(secret)})
    return RnnApp(NodeFacadeImpl(Node(config)))


async def reason_shown(app) -> str:  # type: ignore[no-untyped-def]
    from rnn_tui.tui.screens.modals import FailureScreen

    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(300):
            await pilot.pause(0.1)
            if app.node_error or app.node_started:
                break
        await pilot.pause(0.1)
        assert isinstance(app.screen, FailureScreen), app.screen
        text = str(app.screen.query_one("#failure-reason").render())
        await pilot.press("q")
    assert app.return_value == 1
    return text


async def test_port_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        text = await reason_shown(real_app(tmp_path, monkeypatch, port, "pw-one"))
    assert "already in use" in text and str(port) in text and "Traceback" not in text


async def test_wrong_keystore_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rnn_tui.tui.app import RnnApp

    first = real_app(tmp_path, monkeypatch, 0, "right-passphrase")
    assert isinstance(first, RnnApp)
    async with first.run_test(size=(120, 30)) as pilot:  # creates the keystore
        for _ in range(300):
            await pilot.pause(0.1)
            if first.node_started or first.node_error:
                break
        assert first.node_started, first.node_error
    text = await reason_shown(real_app(tmp_path, monkeypatch, 0, "wrong-passphrase"))
    assert "wrong passphrase" in text and "Traceback" not in text
