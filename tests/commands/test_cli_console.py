"""The CLI (``sinogate command send`` / ``commands list``) and the console in a pseudo-terminal,
against a real running Gateway and a test device."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from sinogate.cli.command import parse_properties
from sinogate.cli.console import parse_input
from tests.commands.devices import H02Device, command_time, device_id

pytestmark = pytest.mark.timeout(60)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli(server: Any, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SINOGATE_TOKEN": server.token, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sinogate", *args, "--url", server.http_url],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_parsing() -> None:
    assert parse_properties("interval.set", ["seconds=30"]) == {"seconds": 30}
    assert parse_properties("custom", ["S20,1,1"]) == {"payload": "S20,1,1"}
    assert parse_properties("custom", ["8040000", "1.2.3.4", "5013"]) == {"payload": "8040000 1.2.3.4 5013"}
    assert parse_properties("params.set", ['params={"0x0029": 30}']) == {"params": {"0x0029": 30}}
    assert parse_input("RCONF") == ("custom", {"payload": "RCONF"})
    assert parse_input("/interval.set seconds=30") == ("interval.set", {"seconds": 30})
    assert parse_input("  ") is None


def test_cli_send_wait_and_list(gateway_server: Any) -> None:
    dev = H02Device(gateway_server.h02_port)
    dev.hello()
    device_id(gateway_server, "h02", dev.ident)

    def answer() -> None:
        frame = dev.read_command(10)
        dev.send(f"*HQ,{dev.ident},V4,S20,DONE,{command_time(frame)},{dev.position_block()}#")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    out = cli(gateway_server, "command", "send", "--device", dev.ident, "engine.stop", "--wait", "--timeout", "10",
              "--confirm")
    thread.join(10)
    assert out.returncode == 0, out.stderr
    assert "engine.stop: processed (executed)" in out.stdout
    assert "reply: S20,DONE" in out.stdout

    out = cli(gateway_server, "command", "send", "--device", dev.ident, "interval.set", "seconds=30")
    assert out.returncode == 0, out.stderr
    assert "interval.set: sent" in out.stdout
    assert b",S71," in dev.read_command()

    out = cli(gateway_server, "commands", "list", "--device", dev.ident)
    assert out.returncode == 0, out.stderr
    assert "engine.stop" in out.stdout and "interval.set" in out.stdout
    dev.close()

    out = cli(gateway_server, "command", "send", "--device", dev.ident, "reboot", "--wait", "--confirm")
    assert out.returncode == 1 and "is not connected" in out.stderr


class Pty:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.text = ""

    def expect(self, pattern: str, timeout: float = 10) -> str:
        deadline = time.time() + timeout
        while not re.search(pattern, ANSI.sub("", self.text)):
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen; console printed:\n{ANSI.sub('', self.text)}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.text += os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    break
        return ANSI.sub("", self.text)

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        os.close(self.master)


def test_console_in_a_pty_shows_traffic_and_the_reply(gateway_server: Any) -> None:
    dev = H02Device(gateway_server.h02_port)
    dev.hello()
    device_id(gateway_server, "h02", dev.ident)
    env = {**os.environ, "SINOGATE_TOKEN": gateway_server.token, "COLUMNS": "200", "TERM": "xterm"}
    term = Pty([sys.executable, "-m", "sinogate", "console", dev.ident, "--url", gateway_server.http_url], env)
    try:
        term.expect(r"h02 device 4210051415")
        term.expect(r"type a command")
        term.send("RCONF")
        assert dev.read_command(10) == b"RCONF"
        term.expect(r"cmd #\d+ custom sent payload RCONF")
        term.expect(r">>\s+5 B 52434f4e46")  # the raw bytes out, in hex
        dev.send(f"*HQ,{dev.ident},SMS,ST901 IP:1.2.3.4 5013#")
        screen = term.expect(r"reply: ST901 IP:1\.2\.3\.4 5013")
        assert re.search(r"<<\s+\d+ B 2a48512c", screen)  # the reply in, hex
        assert "*HQ,4210051415,SMS,ST901 IP:1.2.3.4 5013#" in screen  # and as text
        assert re.search(r"cmd #\d+ custom processed executed", screen)
        assert "msg SMS" in screen
        term.send("/interval.set seconds=30")
        frame = dev.read_command(10)
        assert b",S71," in frame
        dev.send(f"*HQ,{dev.ident},V4,S71,{command_time(frame)},22,30#")
        term.expect(r"cmd #\d+ interval\.set processed executed")
        term.send("/quit")
        term.proc.wait(10)
        assert term.proc.returncode == 0
    finally:
        term.close()
        dev.close()
