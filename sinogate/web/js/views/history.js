// History: a device's track over a time range (coloured by speed), replay, trips / stops from the
// intervals API and events from the events API when the server has them, summary figures, exports.

import { api, data, download, routes } from "../api.js";
import { clear, fmtDuration, fmtTime, fmtValue, fromLocalInput, h, notice, toLocalInput, toast } from "../dom.js";
import { devicePicker, MOVING_SPEED } from "../live.js";
import { arrowIcon, createMap, distanceKm, dotIcon, removeMap, SPEED_LEGEND, speedColor } from "../mapbase.js";

const L = window.L;
const MAX_POINTS = 100000;
const FIELDS = ["timestamp", "position.latitude", "position.longitude", "position.speed", "position.direction",
  "engine.ignition.status", "position.filtered"];
const MAX_GAP = 600; // s: a longer gap between two points is not driving time

function startOfDay(ts) {
  const d = new Date(ts * 1000);
  d.setHours(0, 0, 0, 0);
  return d.getTime() / 1000;
}

// Intervals of a built-in calculator by name (trips, stops) over [from, to]; null when the server
// has no calculators (the analytics routes are not there).
async function intervals(calcName, deviceId, from, to) {
  if (!routes.calcs()) return null;
  const calcs = await api("GET", "/gw/calcs/all");
  const calc = calcs.find((c) => c.name === calcName);
  if (!calc) return [];
  return api("GET", `/gw/calcs/${calc.id}/devices/${deviceId}/intervals/all?${data({ begin: from, end: to })}`);
}

export default {
  id: "history",
  title: "History",
  perDevice: true,
  async mount(root, ctx) {
    const now = Date.now() / 1000;
    let deviceId = ctx.deviceId;
    const from = h("input", { type: "datetime-local", step: 1, id: "history-from", "aria-label": "From",
      value: toLocalInput(Number(ctx.params.from) || startOfDay(now)) });
    const to = h("input", { type: "datetime-local", step: 1, id: "history-to", "aria-label": "To",
      value: toLocalInput(Number(ctx.params.to) || now + 60) });
    const picker = devicePicker(deviceId, (id) => { deviceId = id; ctx.app.setDevice(id); load(); });
    const quick = (label, f) => h("button", { type: "button", class: "small secondary", onclick: () => {
      const [a, b] = f(Date.now() / 1000);
      from.value = toLocalInput(a);
      to.value = toLocalInput(b);
      load();
    } }, label);
    const exportButton = (format) => h("button", { type: "button", class: "small secondary", onclick: () => exportTrack(format) }, format.toUpperCase());
    const loadButton = h("button", { type: "submit", id: "history-load" }, "Show");
    const form = h("form", { class: "toolbar", id: "history-form" }, h("h2", {}, "History"), picker,
      h("label", { class: "inline" }, "From ", from), h("label", { class: "inline" }, "To ", to), loadButton,
      quick("Today", (t) => [startOfDay(t), t + 60]),
      quick("Yesterday", (t) => [startOfDay(t) - 86400, startOfDay(t)]),
      quick("24 h", (t) => [t - 86400, t + 60]),
      quick("7 days", (t) => [t - 7 * 86400, t + 60]),
      h("span", { class: "group", role: "group", "aria-label": "Export" }, "Export ", exportButton("kml"), exportButton("gpx"), exportButton("csv")),
      routes.reports() ? reportPicker() : null);
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });

    const mapEl = h("div", { class: "map", id: "history-map", role: "region", "aria-label": "Track map" });
    const side = h("aside", { class: "panel side history-side", id: "history-side" });
    root.append(form, h("div", { class: "split wide-side" }, mapEl, side));
    const map = createMap(mapEl);
    const layers = L.layerGroup().addTo(map);
    const highlight = L.layerGroup().addTo(map);
    const legend = L.control({ position: "bottomleft" });
    legend.onAdd = () => h("div", { class: "speed-legend" }, "km/h ", SPEED_LEGEND.map(([t, c]) => h("span", {}, h("i", { style: { background: c } }), t)));
    legend.addTo(map);

    const view = { track: null, points: [], trips: null, stops: null, events: null, map };
    let replayMarker = null, timer = null;

    function range() {
      return [fromLocalInput(from.value), fromLocalInput(to.value)];
    }

    // Reports (summary per day, trips, stops, events) as CSV or XLSX, when the server has them.
    function reportPicker() {
      const kind = h("select", { "aria-label": "Report", id: "report-kind" }, ["summary", "trips", "stops", "events"].map((k) => new Option(`${k} report`, k)));
      const format = h("select", { "aria-label": "Report format", id: "report-format" }, new Option("XLSX", "xlsx"), new Option("CSV", "csv"));
      const go = h("button", { type: "button", class: "small secondary", id: "report-download", onclick: async () => {
        const [a, b] = range();
        if (!deviceId || a === null || b === null) return;
        const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
        try {
          await download(`/gw/devices/${deviceId}/reports/${kind.value}?format=${format.value}&${data({ begin: a, end: b, tz })}`, `${kind.value}.${format.value}`);
        } catch (err) {
          toast(`Report failed: ${err.message}`, "error");
        }
      } }, "Download");
      return h("span", { class: "group", role: "group", "aria-label": "Reports" }, kind, format, go);
    }

    async function exportTrack(format) {
      const [a, b] = range();
      if (!deviceId) return;
      try {
        await download(`/gw/devices/${deviceId}/track?format=${format}&${data({ from: a, to: b })}`, `track.${format}`);
      } catch (err) {
        toast(`Export failed: ${err.message}`, "error");
      }
    }

    async function load() {
      delete root.dataset.loaded;
      try {
        await show();
      } finally {
        root.dataset.loaded = String(Date.now()); // for tests: the view settled
      }
    }

    async function show() {
      stop();
      layers.clearLayers();
      highlight.clearLayers();
      clear(side);
      view.track = null;
      view.points = [];
      root.dataset.points = "";
      if (!deviceId) {
        side.append(notice("Choose a device.", "info"));
        return;
      }
      const [a, b] = range();
      if (a === null || b === null || a >= b) {
        side.append(notice("Pick a time range (from before to).", "error"));
        return;
      }
      history.replaceState(null, "", ctx.app.link("history", deviceId, { from: Math.round(a), to: Math.round(b) }));
      side.append(h("p", { class: "muted" }, "Loading…"));
      let messages;
      try {
        messages = await api("GET", `/gw/devices/${deviceId}/messages?${data({ from: a, to: b, fields: FIELDS, count: MAX_POINTS })}`);
      } catch (err) {
        clear(side).append(notice(`Cannot load messages: ${err.message}`, "error"));
        return;
      }
      const points = messages.filter((m) => typeof m["position.latitude"] === "number" &&
        typeof m["position.longitude"] === "number" && !m["position.filtered"]);
      view.points = points;
      draw(points);
      root.dataset.points = String(points.length);
      const [trips, stops, events] = await Promise.all([
        intervals("trips", deviceId, a, b).catch((err) => ({ error: err.message })),
        intervals("stops", deviceId, a, b).catch((err) => ({ error: err.message })),
        routes.events() ? api("GET", `/gw/devices/${deviceId}/events?${data({ from: a, to: b, count: 1000 })}`).catch((err) => ({ error: err.message })) : null,
      ]);
      Object.assign(view, { trips, stops, events });
      clear(side);
      side.append(summary(points, trips, messages.length >= MAX_POINTS));
      if (points.length) side.append(replay(points));
      side.append(intervalList("Trips", "trips", trips), intervalList("Stops", "stops", stops), eventList(events));
      drawMarkers(stops, events);
    }

    function draw(points) {
      if (!points.length) return;
      const latlngs = points.map((p) => [p["position.latitude"], p["position.longitude"]]);
      view.track = L.polyline(latlngs, { color: "#1d2733", weight: 7, opacity: 0.35, className: "sg-track" }).addTo(layers);
      // coloured runs: consecutive points with the same speed colour share one polyline
      let start = 0;
      for (let i = 1; i <= points.length; i++) {
        const colour = speedColor(points[start]["position.speed"]);
        if (i === points.length || speedColor(points[i]["position.speed"]) !== colour) {
          const run = latlngs.slice(start, Math.min(i + 1, points.length));
          if (run.length > 1) L.polyline(run, { color: colour, weight: 4, opacity: 0.95, interactive: false }).addTo(layers);
          start = i;
        }
      }
      L.marker(latlngs[0], { icon: dotIcon("start", "A"), title: `start ${fmtTime(points[0].timestamp)}`, keyboard: false, zIndexOffset: 500 }).addTo(layers);
      L.marker(latlngs[latlngs.length - 1], { icon: dotIcon("end", "B"), title: `end ${fmtTime(points[points.length - 1].timestamp)}`, keyboard: false, zIndexOffset: 500 }).addTo(layers);
      map.fitBounds(view.track.getBounds(), { padding: [24, 24], maxZoom: 16, animate: false });
    }

    function drawMarkers(stops, events) {
      if (Array.isArray(stops)) {
        for (const s of stops) {
          const lat = s["begin.position.latitude"] ?? s["end.position.latitude"], lon = s["begin.position.longitude"] ?? s["end.position.longitude"];
          if (typeof lat !== "number" || typeof lon !== "number") continue;
          L.marker([lat, lon], { icon: dotIcon("stop", "P"), keyboard: false })
            .bindTooltip(`stop ${fmtTime(s.begin)} · ${fmtDuration(s.duration ?? (s.end - s.begin))}`).addTo(layers);
        }
      }
      if (Array.isArray(events)) {
        // trips, stops and ignition already show as the track and the stop markers: the others get a sign
        for (const e of events.filter((x) => !/^(trip|ignition|device)\./.test(x.type))) {
          const lat = e["position.latitude"], lon = e["position.longitude"];
          if (typeof lat !== "number" || typeof lon !== "number") continue;
          L.marker([lat, lon], { icon: dotIcon(`event ${e.type === "alarm" ? "alarm" : ""}`, "!"), keyboard: false })
            .bindTooltip(`${e.type}${e.alarm ? " " + e.alarm : ""} · ${fmtTime(e.timestamp)}`).addTo(layers);
        }
      }
    }

    function summary(points, trips, capped) {
      let distance = 0, driving = 0, maxSpeed = 0;
      for (let i = 0; i < points.length; i++) {
        const p = points[i];
        maxSpeed = Math.max(maxSpeed, p["position.speed"] || 0);
        if (i === 0) continue;
        const q = points[i - 1];
        distance += distanceKm([q["position.latitude"], q["position.longitude"]], [p["position.latitude"], p["position.longitude"]]);
        const dt = p.timestamp - q.timestamp;
        if (dt > 0 && dt <= MAX_GAP && (q["position.speed"] || 0) >= MOVING_SPEED) driving += dt;
      }
      if (Array.isArray(trips) && trips.length) {
        distance = trips.reduce((s, t) => s + (t.distance || 0), 0);
        driving = trips.reduce((s, t) => s + (t.duration ?? (t.end - t.begin)), 0);
      }
      const figure = (label, value, id) => h("div", { class: "figure", id }, h("span", { class: "value" }, value), h("span", { class: "label" }, label));
      return h("section", { class: "summary" },
        h("h3", {}, "Summary"),
        h("div", { class: "figures" },
          figure("points", String(points.length), "summary-points"),
          figure("distance", `${distance.toFixed(1)} km`, "summary-distance"),
          figure("driving", fmtDuration(driving), "summary-driving"),
          figure("max speed", `${fmtValue(maxSpeed)} km/h`, "summary-max-speed"),
          figure("avg moving", driving ? `${fmtValue(distance / (driving / 3600))} km/h` : "–", "summary-avg")),
        capped ? notice(`Only the first ${MAX_POINTS} messages of the range are shown: pick a shorter range.`, "warn") : null,
        points.length ? null : notice("No positions in this range.", "info"));
    }

    function replay(points) {
      const slider = h("input", { type: "range", min: 0, max: points.length - 1, value: 0, id: "replay-slider", "aria-label": "Replay position" });
      const info = h("div", { class: "replay-info mono", "aria-live": "off" });
      const rate = h("select", { "aria-label": "Replay speed" }, [["2", "2 points/s"], ["10", "10 points/s"], ["50", "50 points/s"]].map(([v, t]) => new Option(t, v)));
      rate.value = "10";
      const play = h("button", { type: "button", class: "small", id: "replay-play" }, "▶ Play");
      const show = () => {
        const p = points[Number(slider.value)];
        const ll = [p["position.latitude"], p["position.longitude"]];
        const icon = arrowIcon(speedColor(p["position.speed"]) === "#7b8794" ? "stopped" : "moving", p["position.direction"], "", deviceId);
        if (!replayMarker) replayMarker = L.marker(ll, { icon, keyboard: false, zIndexOffset: 1000 }).addTo(highlight);
        else replayMarker.setLatLng(ll).setIcon(icon);
        info.textContent = `${fmtTime(p.timestamp)} · ${fmtValue(p["position.speed"])} km/h · ignition ${p["engine.ignition.status"] === undefined ? "–" : p["engine.ignition.status"] ? "on" : "off"}`;
      };
      slider.addEventListener("input", show);
      play.addEventListener("click", () => {
        if (timer) { stop(); return; }
        if (Number(slider.value) >= points.length - 1) slider.value = "0";
        play.textContent = "❚❚ Pause";
        const tick = () => {
          const next = Number(slider.value) + 1;
          if (next >= points.length) { stop(); return; }
          slider.value = String(next);
          show();
        };
        timer = setInterval(tick, 1000 / Number(rate.value));
      });
      view.stopReplay = () => { play.textContent = "▶ Play"; };
      show();
      return h("section", { class: "replay" }, h("h3", {}, "Replay"), h("div", { class: "row" }, play, rate), slider, info);
    }

    function stop() {
      if (timer) clearInterval(timer);
      timer = null;
      if (view.stopReplay) view.stopReplay();
      replayMarker = null;
    }

    function zoomTo(begin, end) {
      highlight.clearLayers();
      replayMarker = null;
      const part = view.points.filter((p) => p.timestamp >= begin && p.timestamp <= (end || Infinity))
        .map((p) => [p["position.latitude"], p["position.longitude"]]);
      if (part.length > 1) {
        const line = L.polyline(part, { color: "#2f6fde", weight: 10, opacity: 0.35, className: "sg-highlight" }).addTo(highlight);
        line.bringToBack();
        map.fitBounds(line.getBounds(), { padding: [30, 30], maxZoom: 17 });
      } else if (part.length === 1) {
        map.setView(part[0], 16);
      }
    }

    function intervalList(title, kind, items) {
      const section = h("section", { class: "intervals", id: `history-${kind}` }, h("h3", {}, title));
      if (items === null) {
        section.append(notice(`${title} are not available: this server has no intervals API yet (analytics).`, "muted"));
        return section;
      }
      if (items.error) {
        section.append(notice(`Cannot load ${title.toLowerCase()}: ${items.error}`, "error"));
        return section;
      }
      if (!items.length) {
        section.append(h("p", { class: "muted" }, `No ${title.toLowerCase()} in this range.`));
        return section;
      }
      const list = h("ol", { class: "interval-list" });
      for (const it of items) {
        const dur = it.duration ?? ((it.end || Date.now() / 1000) - it.begin);
        const text = kind === "trips"
          ? `${fmtTime(it.begin)} · ${fmtDuration(dur)} · ${fmtValue(it.distance || 0)} km · max ${fmtValue(it["max.speed"] || 0)} km/h${it.active ? " · ongoing" : ""}`
          : `${fmtTime(it.begin)} · ${fmtDuration(dur)}${it.active ? " · ongoing" : ""}`;
        list.append(h("li", { class: it.active ? "active" : "", dataset: { id: it.id ?? "", begin: it.begin, end: it.end ?? "" } },
          h("button", { type: "button", class: "link", onclick: () => zoomTo(it.begin, it.end) }, text)));
      }
      section.append(list);
      return section;
    }

    function eventList(events) {
      const section = h("section", { class: "intervals", id: "history-events" }, h("h3", {}, "Events"));
      if (events === null) section.append(notice("Events are not available on this server yet.", "muted"));
      else if (events.error) section.append(notice(`Cannot load events: ${events.error}`, "error"));
      else if (!events.length) section.append(h("p", { class: "muted" }, "No events in this range."));
      else {
        const list = h("ol", { class: "interval-list" });
        for (const e of events) {
          list.append(h("li", { class: e.type === "alarm" ? "alarm" : "" }, h("button", { type: "button", class: "link", onclick: () => zoomTo(e.timestamp - 30, e.timestamp + 30) },
            `${fmtTime(e.timestamp)} · ${e.type}${e.alarm ? " " + e.alarm : ""}${e["geofence.name"] ? " " + e["geofence.name"] : ""}`)));
        }
        section.append(list);
      }
      return section;
    }

    await load();
    return {
      view, // track (the polyline of every point), points, trips, stops, events: for tests and debugging
      destroy() {
        stop();
        picker.dispose();
        removeMap(map);
      },
    };
  },
};
