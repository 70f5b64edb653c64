"""The CLI traps a new user fell into, each with a test that would have caught it.

* client commands find the server by ``--url``, ``SINOGATE_URL``, then the config file's http settings
  (not a hard-wired 127.0.0.1:8080);
* they never open or create a database behind the server's back (``--data-dir`` admin mode reads an
  existing store and says so);
* errors are one line and a non-zero exit, never a traceback or an object repr;
* ``simulate`` fails when it cannot connect and writes its summary only where asked;
* console lines show position, speed and ignition first, rounded; each result prints once; the
  console asks before a destructive command; wide tables use the terminal's width.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sinogate.cli.console import ConsoleApp, message_line, number
from tests.commands.devices import H02Device, device_id
from tests.commands.test_cli_console import Pty

pytestmark = pytest.mark.timeout(90)


def sinogate(*args: str, cwd: Path, env: dict[str, str | None] | None = None,
             stdin: str = "") -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SINOGATE_")}
    full["COLUMNS"] = "200"
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run([sys.executable, "-m", "sinogate", *args], cwd=cwd, env=full, input=stdin,
                          capture_output=True, text=True, timeout=60)


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0, out
    assert "Traceback" not in out.stderr and " object at 0x" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the server's."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def test_client_commands_find_the_server_from_the_config_file(gateway_server: Any, elsewhere: Path) -> None:
    server = gateway_server
    dev = H02Device(server.h02_port)
    dev.hello()
    device_id(server, "h02", dev.ident)
    port = server.http_url.rsplit(":", 1)[1]
    (elsewhere / "sinogate.toml").write_text(f'[sinogate]\nhttp_host = "0.0.0.0"\nhttp_port = {port}\n'
                                             f'token = "{server.token}"\n')
    out = sinogate("commands", "list", "--device", dev.ident, cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert "engine.stop" in out.stdout
    # --config from anywhere, the token from the environment
    (elsewhere / "other.toml").write_text(f"[sinogate]\nhttp_port = {port}\n")
    out = sinogate("command", "send", "--device", dev.ident, "config.query", "--config", "elsewhere/other.toml",
                   cwd=elsewhere.parent, env={"SINOGATE_TOKEN": server.token})
    assert out.returncode == 0, out.stderr
    assert dev.read_command() == b"RCONF"
    # SINOGATE_URL wins over the config file; --url over both
    out = sinogate("commands", "list", "--device", dev.ident, cwd=elsewhere,
                   env={"SINOGATE_URL": "http://127.0.0.1:9"})
    assert "cannot reach the sinogate API at http://127.0.0.1:9" in one_line_error(out)
    out = sinogate("commands", "list", "--device", dev.ident, "--url", server.http_url, cwd=elsewhere,
                   env={"SINOGATE_URL": "http://127.0.0.1:9"})
    assert out.returncode == 0, out.stderr
    # a destructive command without --confirm: the reason, one line
    out = sinogate("command", "send", "--device", dev.ident, "engine.stop", cwd=elsewhere)
    assert '"confirm": true' in one_line_error(out)
    dev.close()


def test_client_commands_never_create_a_database(gateway_server: Any, elsewhere: Path) -> None:
    server = gateway_server
    env = {"SINOGATE_URL": server.http_url, "SINOGATE_TOKEN": server.token}
    out = sinogate("export", "--device", "7", cwd=elsewhere, env=env)
    line = one_line_error(out)
    assert line == "error: device 7 not found (code 404)", line
    out = sinogate("token", "create", cwd=elsewhere, env=env)
    assert out.returncode == 0 and len(out.stdout.strip()) >= 32, out.stderr
    out = sinogate("token", "master", cwd=elsewhere)
    assert "no master token in data/token" in one_line_error(out)
    out = sinogate("export", "--device", "7", "--data-dir", "data", cwd=elsewhere)
    assert "no sinogate database at" in one_line_error(out)
    out = sinogate("token", "list", "--data-dir", "data", cwd=elsewhere)
    assert "no sinogate database at" in one_line_error(out)
    assert list(elsewhere.iterdir()) == []  # no data/, no token, no sqlite file
    # admin mode on the server's real store: an unknown device is named, no object repr
    out = sinogate("export", "--device", "nope", "--data-dir", str(server.data_dir), cwd=elsewhere)
    assert "no device 'nope'" in one_line_error(out.__class__(out.args, out.returncode, out.stdout,
                                                               _without_admin_note(out.stderr)))
    assert "admin mode" in out.stderr


def _without_admin_note(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("admin mode"))


def test_no_server_and_no_token_are_one_line(elsewhere: Path) -> None:
    out = sinogate("commands", "list", "--device", "1", cwd=elsewhere)
    assert "no API token" in one_line_error(out)
    out = sinogate("console", "1", "--url", "http://127.0.0.1:9", "--token", "x", cwd=elsewhere)
    assert "cannot reach the sinogate API at http://127.0.0.1:9" in one_line_error(out)
    out = sinogate("commands", "list", "--device", "1", "--config", "missing.toml", cwd=elsewhere)
    assert "config file missing.toml not found" in one_line_error(out)
    (elsewhere / "sinogate.toml").write_text("[sinogate]\nhttp_port = 0\n")
    out = sinogate("commands", "list", "--device", "1", cwd=elsewhere, env={"SINOGATE_TOKEN": "x"})
    assert "http_port = 0" in one_line_error(out)


def test_decode_a_missing_file(elsewhere: Path) -> None:
    out = sinogate("decode", "--protocol", "h02", "nope.txt", cwd=elsewhere)
    assert out.returncode == 2
    assert one_line_error(out) == "error: cannot read nope.txt: No such file or directory"


def test_simulate_fails_when_it_cannot_connect_and_writes_only_where_asked(elsewhere: Path) -> None:
    out = sinogate("simulate", "--target", "127.0.0.1:9", "--devices", "2", "--duration", "0.5", "--no-progress",
                   cwd=elsewhere)
    assert out.returncode == 1
    assert "error: 2 of 2 simulated devices could not connect to 127.0.0.1:9" in out.stderr
    assert list(elsewhere.iterdir()) == []
    out = sinogate("simulate", "--target", "127.0.0.1:9", "--devices", "1", "--duration", "0.5", "--no-progress",
                   "--summary", "run.json", cwd=elsewhere)
    assert out.returncode == 1 and json.loads((elsewhere / "run.json").read_text())["connected"] == 0


def test_console_lines_position_first_rounded_results_once() -> None:
    msg = {"ident": "4210051415", "message.type": "V1", "server.timestamp": 1.0, "timestamp": 1.0,
           "battery.level": 87, "gsm.signal.level": 20, "h02.status": "FFFFFBFF", "alarm.sos": False,
           "position.latitude": 22.586295000000003, "position.longitude": 113.96485499999999,
           "position.speed": 23.575960000000002, "engine.ignition.status": True, **{f"x.{i}": i for i in range(60)}}
    line = re.sub(r"\[/?[a-z ]*\]", "", message_line(msg, width=100))
    assert "22.586295,113.964855  23.6 km/h  ignition on  battery.level=87" in line
    assert "23.575960000000002" not in line and len(line) <= 100 and line.endswith("…")
    assert number(23.575960000000002) == "23.58" and number(12.0) == "12" and number(-0.001) == "0"
    reply = message_line({"message.type": "SMS", "command.response": "ST901 IP:1.2.3.4 5013"}, 200)
    assert "reply" in reply and "1.2.3.4" not in reply  # shown once, by the command's result line

    buf = io.StringIO()
    app = ConsoleApp("http://127.0.0.1:9", "t", "1", 0, Console(file=buf, width=200))
    done = json.dumps({"data": {"id": 5, "name": "custom", "status": "processed", "executed": True,
                                "response": "ST901 IP:1.2.3.4 5013", "timestamp": 1.0}})
    app.show("command", done)
    app.show("command", done)
    assert buf.getvalue().count("reply: ST901 IP:1.2.3.4 5013") == 1
    assert buf.getvalue().count("cmd #5 custom processed") == 1


def test_console_asks_before_a_destructive_command(gateway_server: Any) -> None:
    dev = H02Device(gateway_server.h02_port)
    dev.hello()
    device_id(gateway_server, "h02", dev.ident)
    env = {**os.environ, "SINOGATE_TOKEN": gateway_server.token, "COLUMNS": "200", "TERM": "xterm"}
    term = Pty([sys.executable, "-m", "sinogate", "console", dev.ident, "--url", gateway_server.http_url], env)
    try:
        term.expect(r"type a command")
        term.send("/engine.stop")
        term.expect(r"engine\.stop cuts fuel/power to the vehicle\. Send it\? type yes to confirm")
        term.send("no")
        term.expect(r"not sent")
        with pytest.raises(TimeoutError):
            dev.read_command(0.5)
        term.send("9400000")  # the raw text that does the same
        term.expect(r"custom cuts fuel/power to the vehicle \(940<password>\)\. Send it\?")
        term.send("yes")
        assert dev.read_command(10) == b"9400000"
        term.expect(r"cmd #\d+ custom sent")
        term.send("/quit")
        term.proc.wait(10)
    finally:
        term.close()
        dev.close()


def test_wide_tables_use_the_terminal_width(gateway_server: Any, elsewhere: Path) -> None:
    dev = H02Device(gateway_server.h02_port)
    dev.hello()
    device_id(gateway_server, "h02", dev.ident)
    env = {"SINOGATE_URL": gateway_server.http_url, "SINOGATE_TOKEN": gateway_server.token}
    widths = {}
    for columns in ("100", "240"):
        out = sinogate("commands", "list", "--device", dev.ident, cwd=elsewhere, env={**env, "COLUMNS": columns})
        assert out.returncode == 0, out.stderr
        widths[columns] = max(len(line) for line in out.stdout.splitlines())
    assert widths["100"] <= 100 < widths["240"] <= 240
    dev.close()
