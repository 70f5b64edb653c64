// Events: the live feed of analytics events (alarms, geofences, overspeed, ignition, trips,
// online/offline) with a sound and a flash on alarms; filter by type and device.

import { api, data, routes } from "../api.js";
import { clear, fmtTime, h, notice } from "../dom.js";
import { deviceName, fleet } from "../live.js";

const TYPES = ["alarm", "geofence.enter", "geofence.exit", "overspeed", "ignition.on", "ignition.off", "trip.start",
  "trip.end", "device.online", "device.offline", "command.result"];
const SOUND_KEY = "sinogate.sound";

let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.6);
  } catch { /* no audio: the flash still shows */ }
}

function describe(e) {
  const parts = [e.type];
  if (e.alarm) parts.push(e.alarm);
  if (e["geofence.name"]) parts.push(e["geofence.name"]);
  if (e.type === "overspeed" && e["position.speed"] !== undefined) parts.push(`${Math.round(e["position.speed"])} km/h (limit ${e["speed.limit"] ?? "?"})`);
  return parts.join(" · ");
}

export default {
  id: "events",
  title: "Events",
  perDevice: false,
  async mount(root, ctx) {
    const type = h("select", { "aria-label": "Event type", id: "events-type" }, new Option("all types", ""), TYPES.map((t) => new Option(t, t)));
    const device = h("select", { "aria-label": "Device", id: "events-device" }, new Option("all devices", ""),
      fleet.list().map((e) => new Option(e.device.name || e.device.configuration?.ident, String(e.device.id))));
    const sound = h("input", { type: "checkbox", id: "events-sound", checked: localStorage.getItem(SOUND_KEY) === "1" });
    sound.addEventListener("change", () => localStorage.setItem(SOUND_KEY, sound.checked ? "1" : "0"));
    const flash = h("div", { class: "flash", id: "alarm-flash", hidden: true, role: "alert" });
    const list = h("ol", { class: "event-feed", id: "event-feed" });
    const info = h("div");
    root.append(h("div", { class: "toolbar" }, h("h2", {}, "Events"), type, device,
      h("label", { class: "check" }, sound, " sound on alarms")), flash, info, h("section", { class: "panel" }, list));

    let items = []; // bus-shaped: {device_id, data: event}

    function matches(item) {
      if (type.value && item.data.type !== type.value) return false;
      if (device.value && item.device_id !== Number(device.value)) return false;
      return true;
    }

    function row(item) {
      const e = item.data;
      return h("li", { class: e.type === "alarm" ? "alarm" : e.type.replace(/\./g, "-"), dataset: { type: e.type } },
        h("time", {}, fmtTime(e.timestamp)),
        h("a", { href: ctx.app.link("telemetry", item.device_id) }, deviceName(item.device_id)),
        h("span", { class: "what" }, describe(e)),
        typeof e["position.latitude"] === "number"
          ? h("a", { href: ctx.app.link("history", item.device_id, { from: Math.floor(e.timestamp - 600), to: Math.ceil(e.timestamp + 600) }) }, "on the map")
          : null);
    }

    function render() {
      clear(list);
      const shown = items.filter(matches).slice(-300).reverse();
      for (const item of shown) list.append(row(item));
      if (!shown.length) list.append(h("li", { class: "empty" }, "No events yet."));
    }

    async function load() {
      if (!routes.events()) {
        info.append(notice("Stored events are not available on this server yet; new events appear here live.", "muted"));
        items = [...fleet.recentEvents];
        render();
        return;
      }
      try {
        const rows = await api("GET", `/gw/devices/all/events?${data({ count: 300, reverse: true })}`);
        items = rows.reverse().map((e) => ({ device_id: e["device.id"], data: e }));
      } catch (err) {
        info.append(notice(`Cannot load events: ${err.message}`, "error"));
      }
      render();
    }

    const onEvent = (ev) => {
      const item = ev.detail;
      if (!item.data || !item.data.type) return;
      items.push(item);
      if (items.length > 2000) items.shift();
      if (!matches(item)) return;
      list.querySelector(".empty")?.remove();
      list.prepend(row(item));
      if (item.data.type === "alarm") {
        flash.hidden = false;
        flash.textContent = `Alarm: ${deviceName(item.device_id)} · ${describe(item.data)}`;
        clearTimeout(flash.timer);
        flash.timer = setTimeout(() => { flash.hidden = true; }, 8000);
        if (sound.checked) beep();
      }
    };
    type.addEventListener("change", render);
    device.addEventListener("change", render);
    fleet.addEventListener("event", onEvent);
    await load();
    return { destroy() { fleet.removeEventListener("event", onEvent); } };
  },
};
