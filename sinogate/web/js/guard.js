// Destructive commands (engine.stop, server.set, reboot, factory reset, raw S20 / 940 / 804 …):
// the page asks for confirmation showing the device's current speed, and refuses while the device
// reports a speed above engine_stop_max_speed unless the user forces it.

import { api, session } from "./api.js";
import { dialog, fmtTime, fmtValue, h } from "./dom.js";
import { fleet } from "./live.js";

const NAMES = new Set(["engine.stop", "server.set", "reboot", "factory.reset", "reset", "terminal.control", "apn.set", "password.set"]);
// Raw texts that cut the engine, move the device to another server, reboot or reset it:
// H02 *HQ,<id>,S20,… (cut), Sinotrack SMS codes 940 (cut), 804 (server), 990 (reset), RESTART,
// RESET, FACTORY, CQ, begin; JT/T 808 text RELAY,1 (cut), SERVER, RESET.
const RAW = /^\s*(?:\*?HQ,[^,]*,)?(?:S20\b|940\d*|804\d*|990\d*|RESTART|RESET|FACTORY|CQ\b|BEGIN|RELAY,\s*1|SERVER,)/i;

// The catalog says which commands are destructive (its `destructive` flag) when the server knows;
// a raw text is judged by what it says.
export function isDestructive(name, properties, catalogEntry) {
  if (name === "custom") {
    const payload = String((properties || {}).payload ?? (properties || {}).text ?? (properties || {}).data ?? "");
    return RAW.test(payload) || (catalogEntry && catalogEntry.destructive === true) || false;
  }
  if (catalogEntry && typeof catalogEntry.destructive === "boolean") return catalogEntry.destructive;
  return NAMES.has(name);
}

function maxSpeed(device) {
  const own = Number(device?.settings?.engine_stop_max_speed);
  if (isFinite(own) && own > 0) return own;
  return Number(session.config?.engine_stop_max_speed) || 20;
}

// The device's latest reported speed: from the live fleet, else asked from the API.
async function currentSpeed(deviceId) {
  const entry = fleet.get(deviceId);
  if (entry && typeof entry.values["position.speed"] === "number") {
    return { speed: entry.values["position.speed"], ts: entry.ts["position.speed"] };
  }
  try {
    const [row] = await api("GET", `/gw/devices/${deviceId}/telemetry/position.speed`);
    const item = row && row.telemetry && row.telemetry["position.speed"];
    if (item) return { speed: item.value, ts: item.ts };
  } catch { /* unknown speed */ }
  return { speed: null, ts: null };
}

// Resolves with {confirm: true, force: bool} to send, or null. Not destructive: {} at once.
export async function confirmCommand(deviceId, name, properties, catalogEntry) {
  if (!isDestructive(name, properties, catalogEntry)) return {};
  const device = fleet.get(deviceId)?.device;
  const { speed, ts } = await currentSpeed(deviceId);
  const limit = maxSpeed(device);
  const tooFast = typeof speed === "number" && speed > limit;
  const force = h("input", { type: "checkbox", id: "guard-force" });
  const speedText = typeof speed === "number" ? `${fmtValue(speed)} km/h (reported ${fmtTime(ts)})` : "unknown (no position yet)";
  const body = [
    h("p", {}, `${name} ${properties && Object.keys(properties).length ? JSON.stringify(properties) : ""} is a destructive command for ${device?.name || "#" + deviceId}.`),
    h("p", { class: "speed-line" }, "Current speed: ", h("strong", { id: "guard-speed" }, speedText)),
    tooFast
      ? h("div", { class: "notice error", id: "guard-refused", role: "alert" },
        `Refused: the device reports ${fmtValue(speed)} km/h, above ${limit} km/h. Cutting the engine or moving a vehicle's tracker while it drives can cause an accident.`,
        h("label", { class: "check" }, force, " Force: send it anyway"))
      : h("p", { class: "muted" }, `The page refuses destructive commands above ${limit} km/h.`),
  ];
  let sendButton = null;
  const answer = await dialog({
    title: `Send ${name}?`, body, className: "guard",
    buttons: [{ label: `Send ${name}`, value: "send", kind: "danger", disabled: tooFast }],
    build(dlg) {
      sendButton = dlg.querySelector('button[data-value="send"]');
      force.addEventListener("change", () => { sendButton.disabled = tooFast && !force.checked; });
    },
  });
  if (answer !== "send") return null;
  return { confirm: true, force: tooFast && force.checked };
}
