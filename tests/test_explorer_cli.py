"""``python -m lecturekit explore``, in-process and without a server: its help, the message and exit
status 2 without Voila or with a bad argument, the Voila command it runs (loopback, token, one port,
no tracebacks, the offline template), and Ctrl-C. The page itself is tested in a real browser in
tests/browser/test_explorer_in_browser.py."""
import json
import os
import socket
from pathlib import Path

import pytest

from lecturekit import __main__ as cli


def test_help(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["explore", "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port", "--no-browser", "--notebook"):
        assert option in out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "explore" in capsys.readouterr().out


def test_without_voila_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_voila_installed", lambda: False)
    monkeypatch.setattr(cli.subprocess, "Popen", lambda *a, **k: pytest.fail("no server without Voila"))
    assert cli.main(["explore", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "voila>=0.5"' in err and "lab" in err and "Traceback" not in err


def test_bad_arguments(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "_voila_installed", lambda: True)
    monkeypatch.setattr(cli.subprocess, "Popen", lambda *a, **k: pytest.fail("no server for a bad argument"))
    assert cli.main(["explore", "--no-browser", "--notebook", str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook" in capsys.readouterr().err
    assert cli.main(["explore", "--no-browser", "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert cli.main(["explore", "--no-browser", "--port", str(taken.getsockname()[1])]) == 2
    assert "in use" in capsys.readouterr().err


class FakeServer:
    """What subprocess.Popen returns, recording the command; ``wait`` raises KeyboardInterrupt once
    where ``interrupt`` (Ctrl-C while it runs)."""
    def __init__(self, seen, interrupt, cmd, env):
        self.seen, self.interrupt = seen, interrupt
        folder = Path(cmd[cmd.index("-m") + 2]).parent
        seen.update(cmd=cmd, env=env, folder=folder, signals=[],
                    notebook=json.loads(Path(cmd[cmd.index("-m") + 2]).read_text()),
                    template=(Path(env["JUPYTER_PATH"].split(os.pathsep)[0]) / "voila" / "templates" /
                              cli.OFFLINE_TEMPLATE / "index.html.j2").read_text())

    def wait(self, timeout=None):
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt
        return 0

    def poll(self):
        return None

    def send_signal(self, sig):
        self.seen["signals"].append(sig)


@pytest.mark.parametrize("interrupt", [False, True])
def test_serves_the_explorer_notebook_with_voila(monkeypatch, capsys, interrupt):
    seen = {}
    monkeypatch.setattr(cli, "_voila_installed", lambda: True)
    monkeypatch.setattr(cli.subprocess, "Popen", lambda cmd, env: FakeServer(seen, interrupt, cmd, env))
    monkeypatch.setattr(cli.webbrowser, "open", lambda url: pytest.fail("--no-browser opened a browser"))
    assert cli.main(["explore", "--no-browser", "--port", "8901"]) == 0
    cmd, out = seen["cmd"], capsys.readouterr()
    assert cmd[1:3] == ["-m", "voila"] and "--port=8901" in cmd and "--Voila.ip=127.0.0.1" in cmd
    assert "--show_tracebacks=False" in cmd and "--Voila.port_retries=0" in cmd and "--no-browser" in cmd
    assert f"--template={cli.OFFLINE_TEMPLATE}" in cmd and "--allow-root" not in cmd
    token = next(a for a in cmd if a.startswith("--token=")).split("=", 1)[1]
    assert len(token) == 32 and f"http://127.0.0.1:8901/?token={token}" in out.out
    assert "lk.explorer.Explorer()" in "".join(seen["notebook"]["cells"][-1]["source"])
    assert "cdn" not in seen["template"] and "extends 'voila/templates/lab/index.html.j2'" in seen["template"]
    assert not seen["folder"].exists(), "the temporary folder was left behind"
    if interrupt:
        assert "stopped" in out.err


def test_opens_the_browser_once_the_server_answers(monkeypatch):
    seen, opened = {}, []
    monkeypatch.setattr(cli, "_voila_installed", lambda: True)
    monkeypatch.setattr(cli.subprocess, "Popen", lambda cmd, env: FakeServer(seen, False, cmd, env))
    monkeypatch.setattr(cli, "_answers", lambda port, server: port == 8902)
    monkeypatch.setattr(cli.webbrowser, "open", opened.append)
    assert cli.main(["explore", "--port", "8902"]) == 0
    assert len(opened) == 1 and opened[0].startswith("http://127.0.0.1:8902/?token=")


def test_serves_a_given_notebook(monkeypatch, tmp_path):
    seen = {}
    given = tmp_path / "19_explorer.ipynb"
    given.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(cli, "_voila_installed", lambda: True)
    monkeypatch.setattr(cli.subprocess, "Popen", lambda cmd, env: FakeServer(seen, False, cmd, env))
    assert cli.main(["explore", "--no-browser", "--port", "8903", "--notebook", str(given)]) == 0
    assert seen["cmd"][3] == str(given.resolve()) and given.is_file()
