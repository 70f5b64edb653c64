// The message parameter registry (name, type, unit, meaning), loaded once, and the display order
// of message fields: position first, then motion, power, GSM, alarms, the rest alphabetically.

import { api } from "./api.js";

let registry = null;

export async function parameters() {
  if (!registry) {
    registry = api("GET", "/gw/message-parameters").then((rows) => new Map(rows.map((r) => [r.name, r]))).catch(() => new Map());
  }
  return registry;
}

export const GROUPS = [
  ["alarms", "Alarms", (n) => /\.(alarm|event)$/.test(n)],
  ["position", "Position", (n) => n.startsWith("position.") || n === "timestamp"],
  ["motion", "Motion", (n) => /^(engine|movement|vehicle|odometer|fuel|door|cargo|overspeeding)\./.test(n)],
  ["power", "Power", (n) => /^(battery|external\.powersource|power)\./.test(n)],
  ["gsm", "GSM", (n) => /^(gsm|gprs)\./.test(n)],
  ["other", "Other", () => true],
];

export function groupOf(name) {
  return GROUPS.find(([, , test]) => test(name))[0];
}

const FIRST = ["timestamp", "position.latitude", "position.longitude", "position.speed", "position.direction",
  "position.altitude", "position.satellites", "position.valid", "engine.ignition.status", "message.type"];

// Position first, then by group, then alphabetically; alarms after the readings.
export function orderFields(names) {
  const groupRank = { position: 0, motion: 1, power: 2, gsm: 3, alarms: 4, other: 5 };
  return [...names].sort((a, b) => {
    const fa = FIRST.indexOf(a), fb = FIRST.indexOf(b);
    if (fa >= 0 || fb >= 0) return (fa < 0 ? 99 : fa) - (fb < 0 ? 99 : fb);
    const ga = groupRank[groupOf(a)], gb = groupRank[groupOf(b)];
    return ga - gb || a.localeCompare(b);
  });
}

export const DEFAULT_COLUMNS = ["timestamp", "position.latitude", "position.longitude", "position.speed",
  "position.direction", "position.satellites", "engine.ignition.status", "message.type"];
