"""The web app in a real browser against a real gateway fed by simulated devices (see conftest)."""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import SIM_DEVICES, App, Fleet


def data(**query: Any) -> dict[str, str]:
    return {"data": json.dumps(query)}


def test_login_with_a_token(app: App) -> None:
    page, base = app.page, app.fleet.server.http_url
    page.goto(base + "/")
    page.wait_for_selector("form#login")
    assert page.locator("#nav a").count() == 0
    # a wrong token is refused with a reason (the 401 is expected in the console)
    app.watch.allowed.append("401")
    page.fill("#login-token", "not-a-token")
    page.click("form#login button[type=submit]")
    page.wait_for_selector("form#login .notice.error:not([hidden])")
    assert "not accepted" in page.inner_text("form#login .notice.error")
    page.fill("#login-token", app.fleet.server.token)
    page.click("form#login button[type=submit]")
    page.wait_for_selector("#map-devices li button")
    assert page.locator("#nav a").count() >= 9
    assert "master token" in page.inner_text("#token-kind")
    # the token lives in the session storage, not in the address bar
    assert page.evaluate("sessionStorage.getItem('sinogate.token')") == app.fleet.server.token
    page.reload()
    page.wait_for_selector("#map-devices li button")
    page.click("#logout")
    page.wait_for_selector("form#login")
    assert page.evaluate("sessionStorage.getItem('sinogate.token')") is None


def test_a_link_carries_the_token_and_leaves_the_address_bar(app: App) -> None:
    device = app.fleet.devices[0]
    app.page.goto(f"{app.fleet.server.http_url}/#token={app.fleet.server.token}&device={device['id']}")
    app.page.wait_for_selector("#telemetry table")
    assert app.fleet.server.token not in app.page.url
    assert app.page.url.endswith(f"#/telemetry/{device['id']}")


def test_map_shows_every_device_and_markers_follow_the_stream(app: App, screenshots: Path) -> None:
    app.open("map")
    page = app.page
    ids = {d["id"] for d in app.fleet.devices}
    page.wait_for_function("n => window.sinogate.app.current.instance.markerPositions().length >= n",
                           arg=SIM_DEVICES, timeout=15000)
    first = {m["id"]: m for m in app.instance("v.markerPositions()")}
    assert ids <= set(first)
    assert page.locator(".sg-marker, .marker-cluster").count() >= 1
    assert page.locator("#map-devices li button").count() >= SIM_DEVICES
    # tiles come from the configured map_tiles_url, with its attribution
    assert "test tiles" in page.inner_text(".leaflet-control-attribution")
    # the stream moves the markers: every simulated device reports once a second
    page.wait_for_timeout(3500)
    later = {m["id"]: m for m in app.instance("v.markerPositions()")}
    moved = [i for i in ids if (later[i]["lat"], later[i]["lng"]) != (first[i]["lat"], first[i]["lng"])]
    assert moved, (first, later)
    # and they are where the API says the devices are now (within a few reports)
    rows = app.fleet.api("GET", "/gw/devices/all/telemetry/position.latitude,position.longitude")
    now = {r["id"]: r["telemetry"] for r in rows}
    for i in moved:
        assert abs(later[i]["lat"] - now[i]["position.latitude"]["value"]) < 0.01
        assert later[i]["state"] in ("moving", "stopped", "alarm")
    page.screenshot(path=str(screenshots / "map.png"))
    # a device in the list opens its popup on the map (keyboard: the rows are buttons)
    page.locator("#map-devices li button").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".leaflet-popup-content .links a")


def test_history_draws_the_range_as_one_polyline(app: App, screenshots: Path) -> None:
    fleet = app.fleet
    device = fleet.by_protocol("h02")
    deadline = time.time() + 20
    while True:  # a track of at least a few reports (one a second)
        # Reports are stored a moment after their device time (more under load): a range that ended
        # a few seconds ago no longer changes while the page and the API read it.
        to = time.time() - 5
        rows = fleet.api("GET", f"/gw/devices/{device['id']}/messages", params=data(to=to, count=100000))
        if len(rows) >= 8 or time.time() > deadline:
            break
        time.sleep(1)
    start = rows[0]["timestamp"] - 1
    expected = [m for m in rows if isinstance(m.get("position.latitude"), float | int)
                and isinstance(m.get("position.longitude"), float | int) and not m.get("position.filtered")]
    app.open(f"history/{device['id']}?from={int(start)}&to={int(to)}")
    app.page.wait_for_function("() => document.querySelector('main .view-root').dataset.loaded", timeout=15000)
    points = app.instance("v.view.track ? v.view.track.getLatLngs().length : 0")
    rows = fleet.api("GET", f"/gw/devices/{device['id']}/messages", params=data(to=to, count=100000))
    expected = [m for m in rows if isinstance(m.get("position.latitude"), float | int)
                and isinstance(m.get("position.longitude"), float | int) and not m.get("position.filtered")]
    in_range = [m for m in expected if int(start) <= m["timestamp"] <= int(to)]
    assert points == len(in_range) > 5
    assert app.page.inner_text("#summary-points .value") == str(len(in_range))
    # the replay moves a marker along the track
    app.page.fill("#replay-slider", str(len(in_range) - 1))
    app.page.dispatch_event("#replay-slider", "input")
    assert app.page.locator(".replay-info").inner_text().startswith(time.strftime("%Y-%m-%d"))


def drive_two_trips(fleet: Fleet) -> tuple[dict[str, Any], int, int]:
    """A device with a posted afternoon: parked, a trip, a stop, a trip, parked (one report / 30 s)."""
    ident = str(int(time.time() * 1000))[-11:]
    [device] = fleet.api("POST", "/gw/devices", json=[{"name": "delivery van", "configuration": {"ident": ident},
                                                       "protocol": "jt808"}])
    lat, lon, t = 50.4501, 30.5234, int(time.time()) - 4 * 3600
    begin = t
    messages: list[dict[str, Any]] = []

    def leg(minutes: int, speed: float, heading: float) -> None:
        nonlocal lat, lon, t
        for _ in range(minutes * 2):
            km = speed * 30 / 3600
            lat += km * math.cos(math.radians(heading)) / 111.32
            lon += km * math.sin(math.radians(heading)) / (111.32 * math.cos(math.radians(lat)))
            t += 30
            messages.append({"timestamp": t, "position.latitude": round(lat, 6), "position.longitude": round(lon, 6),
                             "position.speed": speed, "position.direction": heading, "position.valid": True,
                             "engine.ignition.status": speed > 0})

    leg(10, 0, 0)
    leg(12, 45, 80)
    leg(8, 70, 20)
    leg(6, 30, 110)
    leg(15, 0, 0)
    leg(10, 50, 200)
    leg(8, 95, 250)
    leg(12, 0, 0)
    fleet.api("POST", f"/gw/devices/{device['id']}/messages", json=messages)
    return device, begin, t + 1


def test_trips_list_matches_the_intervals_api(app: App, screenshots: Path) -> None:
    spec = httpx.get(app.fleet.server.url("/openapi.json"), timeout=10).json()["paths"]
    if "/gw/calcs" not in spec:
        pytest.skip("the intervals API (/gw/calcs) is not on this server yet")
    device, begin, end = drive_two_trips(app.fleet)
    query = {"data": json.dumps({"begin": begin, "end": end})}
    trips = app.fleet.api("GET", f"/gw/calcs/trips/devices/{device['id']}/intervals/all", params=query)
    stops = app.fleet.api("GET", f"/gw/calcs/stops/devices/{device['id']}/intervals/all", params=query)
    assert len(trips) == 2, trips
    app.open(f"history/{device['id']}?from={begin}&to={end}")
    page = app.page
    page.wait_for_function("() => document.querySelector('main .view-root').dataset.loaded", timeout=15000)
    assert page.locator("#history-trips li").count() == len(trips)
    assert page.locator("#history-stops li").count() == len(stops)
    shown = [float(b) for b in page.locator("#history-trips li").evaluate_all("els => els.map(e => e.dataset.begin)")]
    assert shown == [t["begin"] for t in trips]
    # the summary takes the trips' distance
    distance = sum(t.get("distance") or 0 for t in trips)
    assert page.inner_text("#summary-distance .value") == f"{distance:.1f} km"
    page.screenshot(path=str(screenshots / "history.png"))
    # a trip zooms the map to itself, highlighted
    page.locator("#history-trips li button").nth(1).click()
    page.wait_for_selector("#history-map path.sg-highlight")
    app.fleet.api("DELETE", f"/gw/devices/{device['id']}")


def test_geofence_drawn_in_the_page_is_stored(app: App, screenshots: Path) -> None:
    if "/gw/geofences" not in httpx.get(app.fleet.server.url("/openapi.json"), timeout=10).json()["paths"]:
        pytest.skip("the geofence API is not on this server yet")
    app.open("geofences")
    page = app.page
    page.wait_for_selector(".leaflet-pm-toolbar")
    # near a device, at street level (a fence spans at most 1000 km)
    target = app.fleet.api("GET", f"/gw/devices/{app.fleet.devices[0]['id']}/telemetry/position")[0]["telemetry"]
    where = [target["position.latitude"]["value"], target["position.longitude"]["value"]]
    app.page.evaluate("p => window.sinogate.app.current.instance.map.setView(p, 15, {animate: false})", where)
    page.click(".leaflet-pm-icon-polygon")
    box = page.locator("#geofence-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-80, -60), (90, -50), (40, 80)):
        page.mouse.click(cx + dx, cy + dy)
        page.wait_for_timeout(150)
    page.mouse.click(cx - 80, cy - 60)  # back on the first vertex: the polygon closes
    page.wait_for_selector("#geofence-name")
    name = f"depot-{int(time.time())}"
    page.fill("#geofence-name", name)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#geofence-list li:has-text('{name}')")
    fences = [g for g in app.fleet.api("GET", "/gw/geofences") if g["name"] == name]
    assert len(fences) == 1
    geometry = fences[0]["geometry"]
    assert geometry["type"] == "polygon" and len(geometry["path"]) in (3, 4)
    page.screenshot(path=str(screenshots / "geofences.png"))


def test_console_shows_traffic_and_the_reply_to_a_command(app: App, screenshots: Path) -> None:
    device = app.fleet.by_protocol("h02")
    app.open(f"console/{device['id']}")
    page = app.page
    page.wait_for_selector("#console-pane .line.in")
    page.wait_for_selector("#console-pane .line.msg")  # the decoded summary under a frame
    # Tab completes from the device's catalog
    page.fill("#console-input", "status.q")
    page.press("#console-input", "Tab")
    assert page.input_value("#console-input") == "status.query "
    # a raw text goes out as the custom command; the simulated unit's SMS-style answer shows inline
    page.fill("#console-input", "RCONF")
    page.press("#console-input", "Enter")
    reply = page.wait_for_selector("#console-pane .line.cmd .reply", timeout=20000)
    assert "ST901" in reply.inner_text()
    assert page.locator("#console-pane .line.cmd .cmd-status.processed").count() >= 1
    page.screenshot(path=str(screenshots / "console.png"))


def test_destructive_command_asks_and_is_refused_while_driving(app: App, screenshots: Path) -> None:
    fleet = app.fleet
    # a device that reports 80 km/h (posted through the API: it is not connected)
    ident = str(int(time.time() * 1000))[-10:]
    [device] = fleet.api("POST", "/gw/devices", json=[{"name": "fast van", "configuration": {"ident": ident},
                                                       "protocol": "h02"}])
    fleet.api("POST", f"/gw/devices/{device['id']}/messages",
              json=[{"position.latitude": 50.1, "position.longitude": 30.1, "position.speed": 80.0}])
    app.open(f"commands/{device['id']}")
    page = app.page
    page.wait_for_selector("#command-name")
    page.select_option("#command-name", "engine.stop")
    page.click("#command-queue-button")
    dialog = page.wait_for_selector("dialog.guard")
    assert "80 km/h" in page.inner_text("#guard-speed")
    assert page.locator("#guard-refused").is_visible()
    send = page.locator('dialog.guard button[data-value="send"]')
    assert send.is_disabled()
    page.screenshot(path=str(screenshots / "commands-confirm.png"))
    # cancel: nothing was sent or queued
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog.guard", state="detached")
    assert "Not sent" in page.inner_text("#command-result")
    assert fleet.api("GET", f"/gw/devices/{device['id']}/commands-queue") == []
    # forced: queued with the confirmation, listed, then canceled from the list
    page.click("#command-queue-button")
    page.wait_for_selector("dialog.guard")
    page.check("#guard-force")
    assert send.is_enabled()
    send.click()
    page.wait_for_selector("#command-queue tbody tr")
    [queued] = fleet.api("GET", f"/gw/devices/{device['id']}/commands-queue")
    assert queued["name"] == "engine.stop"
    page.click("#command-queue tbody tr button.danger")
    page.wait_for_function("() => !document.querySelector('#command-queue tbody tr')")
    assert fleet.api("GET", f"/gw/devices/{device['id']}/commands-queue") == []
    assert dialog is not None
    fleet.api("DELETE", f"/gw/devices/{device['id']}")


def test_a_harmless_command_from_the_form_gets_the_reply(app: App, screenshots: Path) -> None:
    device = app.fleet.by_protocol("h02")
    app.open(f"commands/{device['id']}")
    page = app.page
    page.wait_for_selector("#command-name")
    page.select_option("#command-name", "custom")
    page.fill("#prop-payload", "RCONF")
    page.click("#command-send")
    page.wait_for_selector("#command-result .reply", timeout=20000)
    assert "ST901" in page.inner_text("#command-result .reply")
    page.wait_for_selector("#command-results tbody tr")
    page.screenshot(path=str(screenshots / "commands.png"))
    # the same command as an SMS text, for a unit out of GPRS reach
    page.click("#command-sms")
    assert "RCONF" in page.wait_for_selector("#sms-text").inner_text()


def test_a_read_only_token_sees_no_command_form(app: App) -> None:
    token = app.fleet.api("POST", "/platform/tokens", json=[{"read_only": True, "name": "viewer"}])[0]["key"]
    device = app.fleet.by_protocol("h02")
    app.open(f"commands/{device['id']}", token=token)
    page = app.page
    page.wait_for_selector("#command-form-box .notice")
    assert page.locator("#command-form").count() == 0
    assert "read-only" in page.inner_text("#command-form-box")
    assert "read-only" in page.inner_text("#token-kind")
    app.open(f"console/{device['id']}", token=token)
    page.wait_for_selector("#console-pane .line")
    assert page.locator("#console-form").count() == 0
    app.open("devices", token=token)
    page.wait_for_selector("#devices-table tbody tr")
    assert page.locator("#add-device").count() == 0
    assert page.locator("#devices-table button.danger").count() == 0


def test_every_view_renders_without_errors(app: App, screenshots: Path) -> None:
    fleet = app.fleet
    device = fleet.by_protocol("jt808")
    app.open("devices")
    app.page.wait_for_selector("#devices-table tbody tr[data-id]")
    assert app.page.locator("#devices-table tbody tr[data-id]").count() >= SIM_DEVICES
    app.page.screenshot(path=str(screenshots / "devices.png"))
    app.open(f"telemetry/{device['id']}")
    app.page.wait_for_selector("#telemetry .group-position table")
    # position first; units shown
    first_group = app.page.locator("#telemetry section").first.get_attribute("class") or ""
    assert "group-position" in first_group or "alarms-on" in first_group
    assert "km/h" in app.page.inner_text("#telemetry .group-position")
    app.page.screenshot(path=str(screenshots / "telemetry.png"))
    app.open(f"messages/{device['id']}")
    app.page.wait_for_selector("#messages-table tbody tr.clickable")
    headers = app.page.locator("#messages-table thead th").all_inner_texts()
    assert headers[0].startswith("timestamp") and headers[1].startswith("position.latitude")
    app.page.locator("#messages-table tbody tr.clickable").first.click()
    app.page.wait_for_selector("#message-raw pre.hex")  # the raw packet of the message
    app.page.screenshot(path=str(screenshots / "messages.png"))
    # paging by time cursor: the older page starts where this one ends, and comes back
    deadline = time.time() + 40
    while len(fleet.api("GET", f"/gw/devices/{device['id']}/messages", params=data(count=30))) < 30:
        assert time.time() < deadline
        time.sleep(1)
    app.page.select_option("#messages-form select[aria-label='Rows per page']", "25")
    app.page.click("#messages-form button[type=submit]")
    app.page.wait_for_function("() => document.querySelectorAll('#messages-table tbody tr.clickable').length === 25")
    rows = "v.rows.map(r => [r.timestamp, r['server.timestamp']])"
    first = ("s => { const r = window.sinogate.app.current.instance.rows; "
             "return r.length && r[0]['server.timestamp'] === s; }")
    newest = app.instance(rows)
    app.page.click("button:has-text('Older')")
    app.page.wait_for_function(f"s => !({first})(s)", arg=newest[0][1])
    older = app.instance(rows)
    assert max(t for t, _ in older) <= min(t for t, _ in newest)
    assert not {tuple(r) for r in older} & {tuple(r) for r in newest}  # no message on both pages
    app.page.click("button:has-text('Newer')")
    app.page.wait_for_function(first, arg=newest[0][1])
    # the filter box goes to the API
    app.page.fill("#messages-filter", "position.speed>=1000")
    app.page.press("#messages-filter", "Enter")
    app.page.wait_for_selector("#messages-table tbody td.empty")
    app.open("events")
    app.page.wait_for_selector("#event-feed li")
    app.page.screenshot(path=str(screenshots / "events.png"))


def test_docs_work_offline(app: App) -> None:
    app.page.goto(app.fleet.server.http_url + "/docs")
    app.page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert "sinogate" in app.page.inner_text(".swagger-ui .info .title")
    app.page.wait_for_selector(".opblock-tag")


def test_phone_width_has_no_horizontal_scroll(app: App, screenshots: Path) -> None:
    app.page.set_viewport_size({"width": 390, "height": 844})
    for view in ("map", "devices", f"console/{app.fleet.devices[0]['id']}"):
        app.open(view)
        app.page.wait_for_timeout(400)
        width = app.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 392, (view, width)
        if view == "map":
            app.page.screenshot(path=str(screenshots / "map-phone.png"))


def test_keyboard_reaches_the_views(app: App) -> None:
    app.open("map")
    page = app.page
    page.keyboard.press("Tab")  # the skip link first
    assert page.evaluate("document.activeElement.className") == "skip"
    reached = set()
    for _ in range(20):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Map", "Devices", "History", "Console", "Commands"} <= reached


def test_devices_claim_rename_settings_disable_delete(app: App) -> None:
    fleet = app.fleet
    ident = "42100" + str(int(time.time()))[-5:]
    t, d = time.strftime("%H%M%S", time.gmtime()), time.strftime("%d%m%y", time.gmtime())
    with socket.create_connection(("127.0.0.1", fleet.server.h02_port), timeout=5) as tracker:
        tracker.sendall(f"*HQ,{ident},V1,{t},A,2235.1777,N,11357.8913,E,000.00,000,{d},FFFFFBFF#".encode())
        deadline = time.time() + 10
        while not any(r["ident"] == ident for r in fleet.api("GET", "/gw/channels/all/idents")):
            assert time.time() < deadline, "the unknown ident was not recorded"
            time.sleep(0.2)
    app.open("devices")
    page = app.page
    row = page.wait_for_selector(f"#unknown-idents tr:has-text('{ident}')")
    row.query_selector("button").click()
    page.fill("dialog input[name=name]", "claimed unit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#devices-table tr:has-text('claimed unit')")
    [device] = [d for d in fleet.api("GET", "/gw/devices/all") if d["configuration"]["ident"] == ident]
    assert device["protocol"] == "h02" and device["name"] == "claimed unit"
    line = f"#devices-table tr[data-id='{device['id']}']"
    # rename
    page.click(f"{line} button:has-text('Rename')")
    page.fill("dialog input[name=name]", "renamed unit")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{line}:has-text('renamed unit')")
    # settings from the schema: time offset and speed limit
    page.click(f"{line} button:has-text('Settings')")
    page.fill("#setting-time_offset", "3")
    page.fill("#setting-speed_limit", "90")
    page.click("dialog button:has-text('Save')")
    page.wait_for_selector(".toast.ok:has-text('Settings saved')")
    [stored] = fleet.api("GET", f"/gw/devices/{device['id']}")
    assert stored["name"] == "renamed unit"
    assert stored["settings"]["time_offset"] == 3 and stored["settings"]["speed_limit"] == 90
    # disable, then delete (after a confirmation)
    page.click(f"{line} button:has-text('Disable')")
    page.wait_for_selector(f"{line}.disabled")
    assert fleet.api("GET", f"/gw/devices/{device['id']}")[0]["enabled"] is False
    page.click(f"{line} button:has-text('Delete')")
    page.click("dialog button.danger")
    page.wait_for_selector(line, state="detached")
    assert not [d for d in fleet.api("GET", "/gw/devices/all") if d["id"] == device["id"]]


def test_alarm_event_arrives_live_with_a_flash(app: App) -> None:
    fleet = app.fleet
    ident = str(int(time.time() * 1000))[-10:]
    [device] = fleet.api("POST", "/gw/devices", json=[{"name": "panic van", "configuration": {"ident": ident},
                                                       "protocol": "h02"}])
    app.open("events")
    app.page.wait_for_selector("#event-feed li")
    now = time.time()
    fix = {"position.latitude": 50.2, "position.longitude": 30.2, "position.speed": 0.0}
    pressed = [{**fix, "timestamp": now - 2, "sos.alarm": False}, {**fix, "timestamp": now - 1, "sos.alarm": True}]
    fleet.api("POST", f"/gw/devices/{device['id']}/messages", json=pressed)
    row = app.page.wait_for_selector("#event-feed li.alarm:has-text('panic van')", timeout=15000)
    assert "sos" in row.inner_text()
    assert "panic van" in app.page.wait_for_selector("#alarm-flash:not([hidden])").inner_text()
    # the type filter hides it
    app.page.select_option("#events-type", "ignition.on")
    assert app.page.locator("#event-feed li.alarm:has-text('panic van')").count() == 0
    fleet.api("DELETE", f"/gw/devices/{device['id']}")


def test_map_without_reachable_tiles_keeps_markers_on_a_blank_background(app: App) -> None:
    app.page.route("**/tiles/**", lambda route: route.abort())
    app.watch.allowed.append("net::ERR_FAILED")  # the refused tiles, nothing else
    app.open("map")
    app.page.wait_for_selector(".map-note:not([hidden])")
    assert "blank background" in app.page.inner_text(".map-note")
    app.page.wait_for_function("n => window.sinogate.app.current.instance.markerPositions().length >= n",
                               arg=SIM_DEVICES)
