"""`sinogate decode`: one JSON line per input line, errors reported, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

V1 = "*HQ,4210051415,V1,164549,A,2235.1777,N,11357.8913,E,000.00,000,221215,FFFFFBFF#"
JT_HEARTBEAT = "7e 00 02 00 00 01 39 12 34 56 78 00 05 37 7e"


def run_decode(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sinogate", "decode", *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_h02_lines_from_stdin() -> None:
    hexed = V1.encode().hex()
    result = run_decode(["--protocol", "h02"], f"{V1}\n{hexed}\nnot a capture\n\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    text, hexline, bad = lines
    for decoded in (text, hexline):
        (message,) = decoded["messages"]
        assert message["ident"] == "4210051415"
        assert message["position.latitude"] == pytest.approx(22.586295, abs=1e-5)
        assert message["timestamp"] == 1450802749.0
        reply = bytes.fromhex(decoded["replies"][0]).decode()
        assert reply.startswith("*HQ,4210051415,V4,V1,") and reply.endswith("#")
        assert decoded["errors"] == []
    assert bad["messages"] == [] and bad["errors"]


def test_jt808_file_with_colons_and_a_bad_checksum(tmp_path: Path) -> None:
    capture = tmp_path / "capture.txt"
    good = JT_HEARTBEAT.replace(" ", ":")
    bad_checksum = "7e000200000139123456780005127e"
    capture.write_text(f"{good}\n{bad_checksum}\n7e0200\n", encoding="utf-8")
    result = run_decode(["--protocol", "jt808", str(capture)], "")
    assert result.returncode == 0, result.stderr
    first, second, third = (json.loads(line) for line in result.stdout.splitlines())
    assert first["messages"][0]["message.type"] == "0x0002" and first["errors"] == []
    assert first["replies"][0].startswith("7e8001")
    assert any("checksum" in e for e in second["errors"])
    assert second["messages"][0]["ident"] == "13912345678"  # lenient by default: still decoded
    assert third["messages"] == [] and any("ended inside a frame" in e for e in third["errors"])


def test_pretty_and_unknown_protocol() -> None:
    pretty = run_decode(["--protocol", "h02", "--pretty"], V1 + "\n")
    assert pretty.returncode == 0 and "position.latitude" in pretty.stdout and "reply" in pretty.stdout
    unknown = run_decode(["--protocol", "gt06"], V1 + "\n")
    assert unknown.returncode == 2 and "unknown protocol" in unknown.stderr


def test_trailing_junk_and_partial_frames_are_reported() -> None:
    result = run_decode(["--protocol", "h02"], f"{JT_HEARTBEAT}\n{V1[:20]}\n{V1}zzzz\n")
    junk, partial, trailing = (json.loads(line) for line in result.stdout.splitlines())
    assert junk["messages"] == [] and junk["errors"] == ["skipped 15 junk byte(s)"]
    assert partial["errors"] == ["stream ended inside a frame (20 bytes)"]
    assert len(trailing["messages"]) == 1 and trailing["errors"] == ["skipped 4 junk byte(s)"]


def test_time_offset_is_applied_like_a_device_setting() -> None:
    v1_local = V1.replace("164549", "004549").replace("221215", "231215")  # 16:45:49 UTC on a GMT+8 clock
    plain, shifted = (json.loads(run_decode(["--protocol", "h02", *args], v1_local + "\n").stdout)
                      for args in ([], ["--time-offset", "8"]))
    assert plain["messages"][0]["timestamp"] == 1450802749.0 + 8 * 3600
    assert shifted["messages"][0]["timestamp"] == 1450802749.0
    heartbeat = "7e0200001c013912345678000700000000000c0003015898b706cb0c3700230195006125122116454971" + "7e"
    utc = json.loads(run_decode(["--protocol", "jt808", "--time-offset", "0"], heartbeat + "\n").stdout)
    gmt8 = json.loads(run_decode(["--protocol", "jt808"], heartbeat + "\n").stdout)
    assert utc["messages"][0]["timestamp"] - gmt8["messages"][0]["timestamp"] == 8 * 3600
    half = json.loads(run_decode(["--protocol", "h02", "--time-offset", "-3.5"], V1 + "\n").stdout)
    assert half["messages"][0]["timestamp"] == 1450802749.0 + 3.5 * 3600


def test_field_fidelity_samples() -> None:
    s37 = "2400000000000752341410205224734946012332841e002118ffff7bff0b00070000001799"
    [decoded] = (json.loads(line) for line in run_decode(["--protocol", "h02"], s37 + "\n").stdout.splitlines())
    assert decoded["errors"] == [] and len(decoded["messages"]) == 1  # not "stream ended inside a frame"
    message = decoded["messages"][0]
    assert message["position.latitude"] == pytest.approx(52.412248, abs=1e-6)
    assert message["timestamp"] == 1602661954.0
    # a 0x0200 whose header says 28 body bytes and which carries 23 (right checksum over what is there)
    inner = bytes.fromhex("0200001c0139123456780007" + "00000000000c0003015898b706cb0c3700230195006125")
    checksum = 0
    for b in inner:
        checksum ^= b
    cut = "7e" + (inner + bytes([checksum])).hex() + "7e"
    [broken] = (json.loads(line) for line in run_decode(["--protocol", "jt808"], cut + "\n").stdout.splitlines())
    assert broken["messages"] == [] and any("body length field" in e for e in broken["errors"])
    assert broken["replies"][0][2:6] == "8001" and broken["replies"][0][-6:-4] == "02"  # result 2, not success
