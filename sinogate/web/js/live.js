// The fleet as the page knows it: every device the token may see, its latest values (telemetry,
// then each message from the live stream) and its state (moving / stopped / offline / alarm).
// Views listen to `fleet` for "change" (a device's values or the list changed), "message",
// "event", "command" and "log" (the live stream's events, detail = the bus event).

import { api, data, session, stream } from "./api.js";

const TELEMETRY_NAMES = [
  "position", "engine.ignition.status", "battery", "gsm.signal.level", "external.powersource.voltage",
  "vehicle.state", "*.alarm", "*.event",
];
export const MOVING_SPEED = 5; // km/h, like the trips calculator's default
const OFFLINE_AFTER = 600; // s without a message or a connection

export function isAlarmName(name) {
  return /\.(alarm|event)$/.test(name);
}

class Fleet extends EventTarget {
  constructor() {
    super();
    this.entries = new Map(); // id -> {device, values, ts, last}
    this.source = null;
    this.streamStatus = "connecting";
    this.recentEvents = []; // newest last, at most 500
    this.timer = null;
    this.loaded = null;
    this.refreshing = null;
    this.queued = null;
  }

  start() {
    if (!this.loaded) this.loaded = this.load();
    if (!this.source) {
      this.source = stream("all", ["message", "log", "event", "command"], {
        message: (e) => this.onMessage(e),
        log: (e) => this.onLog(e),
        event: (e) => this.onEvent(e),
        command: (e) => this.emit("command", e),
      }, (status) => { this.streamStatus = status; this.emit("status", status); });
    }
    if (!this.timer) this.timer = setInterval(() => this.refreshDevices().catch(() => {}), 30000);
    return this.loaded;
  }

  stop() {
    if (this.source) this.source.close();
    this.source = null;
    clearInterval(this.timer);
    this.timer = null;
    this.entries.clear();
    this.loaded = null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async load() {
    await this.refreshDevices();
    if (!this.entries.size) return;
    const rows = await api("GET", `/gw/devices/all/telemetry/${TELEMETRY_NAMES.join(",")}`);
    for (const row of rows) {
      const entry = this.entries.get(row.id);
      if (!entry) continue;
      for (const [name, item] of Object.entries(row.telemetry || {})) {
        entry.values[name] = item.value;
        entry.ts[name] = item.ts;
        if (name === "position.latitude") entry.last = Math.max(entry.last, item.ts || 0);
      }
    }
    this.emit("change", { all: true });
  }

  // One refresh at a time, and at most one more after it: messages of a device the page does not
  // know yet share them, and a refresh asked after a change always fetches after that change.
  refreshDevices() {
    if (this.refreshing) {
      if (!this.queued) this.queued = this.refreshing.then(() => { this.queued = null; return this.refreshDevices(); });
      return this.queued;
    }
    this.refreshing = this.fetchDevices().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  async fetchDevices() {
    const devices = await api("GET", "/gw/devices/all?fields=id,name,configuration,protocol,enabled,connected,last_active,settings,model");
    const seen = new Set();
    for (const device of devices) {
      seen.add(device.id);
      const entry = this.entries.get(device.id);
      if (entry) entry.device = device;
      else this.entries.set(device.id, { device, values: {}, ts: {}, last: 0 });
    }
    for (const id of [...this.entries.keys()]) if (!seen.has(id)) this.entries.delete(id);
    this.emit("change", { all: true });
  }

  get(id) {
    return this.entries.get(Number(id));
  }

  list() {
    return [...this.entries.values()].sort((a, b) => a.device.id - b.device.id);
  }

  onMessage(event) {
    const entry = this.entries.get(event.device_id);
    if (!entry) {
      this.refreshDevices().catch(() => {});
      return;
    }
    const message = event.data || {};
    const ts = message.timestamp || 0;
    for (const [name, value] of Object.entries(message)) {
      if ((entry.ts[name] || 0) <= ts) {
        entry.values[name] = value;
        entry.ts[name] = ts;
      }
    }
    if (typeof message["position.latitude"] === "number") entry.last = Math.max(entry.last, ts);
    entry.device.last_active = Math.max(entry.device.last_active || 0, message["server.timestamp"] || Date.now() / 1000);
    this.emit("message", event);
    this.emit("change", { id: entry.device.id });
  }

  onLog(event) {
    const entry = this.entries.get(event.device_id);
    if (!entry) {
      this.refreshDevices().catch(() => {});
      return;
    }
    const what = (event.data || {}).event;
    if (what === "connect") entry.device.connected = true;
    else if (what === "disconnect") entry.device.connected = false;
    this.emit("log", event);
    this.emit("change", { id: entry.device.id });
  }

  onEvent(event) {
    this.recentEvents.push(event);
    if (this.recentEvents.length > 500) this.recentEvents.shift();
    this.emit("event", event);
  }
}

export const fleet = new Fleet();

export function deviceName(id) {
  const entry = fleet.get(id);
  return entry ? entry.device.name || entry.device.configuration?.ident || `#${id}` : `#${id}`;
}

// Alarm flags that are on in the device's latest message.
export function alarmsOn(entry) {
  const newest = Math.max(0, ...Object.values(entry.ts));
  return Object.keys(entry.values).filter((name) => isAlarmName(name) && entry.values[name] === true &&
    (entry.ts[name] || 0) >= newest - 1);
}

export function stateOf(entry) {
  if (alarmsOn(entry).length) return "alarm";
  const offlineAfter = Number(entry.device.settings?.offline_after) || OFFLINE_AFTER;
  const last = Math.max(entry.device.last_active || 0, entry.last || 0);
  if (!entry.device.connected && Date.now() / 1000 - last > offlineAfter) return "offline";
  const speed = entry.values["position.speed"];
  return typeof speed === "number" && speed >= MOVING_SPEED ? "moving" : "stopped";
}

export function position(entry) {
  const lat = entry.values["position.latitude"], lon = entry.values["position.longitude"];
  return typeof lat === "number" && typeof lon === "number" ? [lat, lon] : null;
}

// The device picker shared by the per-device views: <select> of every device.
export function devicePicker(selected, onChange) {
  const select = document.createElement("select");
  select.setAttribute("aria-label", "Device");
  select.className = "device-picker";
  const fill = () => {
    const current = select.value || String(selected || "");
    select.replaceChildren(new Option("— choose a device —", ""));
    for (const entry of fleet.list()) {
      const d = entry.device;
      select.append(new Option(`${d.name || d.configuration?.ident} (${d.protocol}, #${d.id})`, String(d.id)));
    }
    select.value = current;
  };
  fill();
  select.addEventListener("change", () => onChange(select.value ? Number(select.value) : null));
  const onFleet = (e) => { if (e.detail && e.detail.all) fill(); };
  fleet.addEventListener("change", onFleet);
  select.dispose = () => fleet.removeEventListener("change", onFleet);
  return select;
}

export { data, session };
