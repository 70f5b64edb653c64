// Device console: the live raw traffic in and out (text frames as text, binary as hex) with the
// decoded summary under each frame, and a command line with completion from the device's catalog;
// each command's status and the device's reply show inline.

import { api, data, session, stream } from "../api.js";
import { bytesFromBase64, bytesFromHex, clear, fmtClock, fmtValue, h, hexOf, isText, notice, printable } from "../dom.js";
import { devicePicker, isAlarmName } from "../live.js";
import { confirmCommand } from "../guard.js";

const MAX_LINES = 1500;

function summary(m) {
  const parts = [m["message.type"] || "message"];
  if (typeof m["position.latitude"] === "number") {
    parts.push(`${m["position.latitude"].toFixed(6)}, ${m["position.longitude"].toFixed(6)}`);
    if (m["position.speed"] !== undefined) parts.push(`${fmtValue(m["position.speed"])} km/h`);
    if (m["position.direction"] !== undefined) parts.push(`${fmtValue(m["position.direction"])}°`);
    if (m["position.valid"] === false) parts.push("invalid fix");
  }
  if (m["engine.ignition.status"] !== undefined) parts.push(`ignition ${m["engine.ignition.status"] ? "on" : "off"}`);
  if (m["battery.level"] !== undefined) parts.push(`battery ${fmtValue(m["battery.level"])} %`);
  if (m["gsm.signal.level"] !== undefined) parts.push(`gsm ${m["gsm.signal.level"]}`);
  const alarms = Object.keys(m).filter((k) => isAlarmName(k) && m[k] === true);
  if (alarms.length) parts.push(`ALARM ${alarms.join(", ")}`);
  if (m["command.response"]) parts.push(`reply: ${m["command.response"]}`);
  return parts.join(" · ");
}

// "name key=value key=value" -> {name, properties}; an unknown first word sends the line as text.
export function parseLine(line, catalog) {
  const text = line.trim();
  const [first, ...rest] = text.split(/\s+/);
  const entry = catalog.find((c) => c.name === first);
  if (first === "raw") return { name: "custom", properties: { payload: text.slice(3).trim() } };
  if (!entry) return { name: "custom", properties: { payload: text }, raw: true };
  const properties = {};
  const restText = text.slice(first.length).trim();
  if (restText.startsWith("{")) return { name: first, properties: JSON.parse(restText) };
  for (const pair of rest) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`expected key=value, got ${JSON.stringify(pair)}`);
    const key = pair.slice(0, eq), value = pair.slice(eq + 1);
    try {
      properties[key] = JSON.parse(value);
    } catch {
      properties[key] = value;
    }
  }
  return { name: first, properties };
}

function usage(entry) {
  const props = (entry.schema && entry.schema.properties) || {};
  const required = new Set((entry.schema && entry.schema.required) || []);
  const args = Object.entries(props).map(([k, s]) => {
    const t = Array.isArray(s.type) ? s.type.join("|") : s.type || "value";
    return required.has(k) ? `${k}=<${t}>` : `[${k}=<${t}>]`;
  });
  return `${entry.name} ${args.join(" ")}`.trim();
}

export default {
  id: "console",
  title: "Console",
  perDevice: true,
  async mount(root, ctx) {
    let deviceId = ctx.deviceId;
    let catalog = [];
    let source = null;
    let paused = false;
    const picker = devicePicker(deviceId, (id) => { deviceId = id; ctx.app.setDevice(id); start(); });
    const pane = h("div", { class: "console-pane mono", id: "console-pane", role: "log", "aria-live": "off", tabindex: 0 });
    const pauseButton = h("button", { type: "button", class: "small secondary", onclick: () => {
      paused = !paused;
      pauseButton.textContent = paused ? "Resume" : "Pause";
    } }, "Pause");
    const hexAll = h("input", { type: "checkbox", id: "console-hex" });
    const toolbar = h("div", { class: "toolbar" }, h("h2", {}, "Console"), picker, pauseButton,
      h("button", { type: "button", class: "small secondary", onclick: () => clear(pane) }, "Clear"),
      h("label", { class: "check" }, hexAll, " hex for text frames too"),
      h("span", { class: "legend-inline" }, h("span", { class: "in" }, "⇢ in"), " ", h("span", { class: "out" }, "⇠ out"), " ", h("span", { class: "msg" }, "↳ decoded"), " ", h("span", { class: "cmd" }, "⌘ command")));
    const input = h("input", { type: "text", id: "console-input", class: "mono", autocomplete: "off", spellcheck: "false",
      placeholder: "command (Tab completes), e.g. status.query, interval.set seconds=30, or raw text like RCONF",
      "aria-label": "Command line", list: "console-commands" });
    const datalist = h("datalist", { id: "console-commands" });
    const hint = h("div", { class: "console-hint mono", id: "console-hint", "aria-live": "polite" });
    const prompt = session.readOnly
      ? notice("This token is read-only: the console shows the traffic; commands need a read-write token.", "muted")
      : h("form", { class: "console-prompt", id: "console-form" }, h("span", { class: "mono" }, "›"), input, datalist, h("button", { type: "submit" }, "Send"));
    root.append(toolbar, pane, prompt, hint);

    const commandLines = new Map(); // command id -> element
    const history = [];
    let historyAt = 0;

    function add(line) {
      if (paused) return line;
      const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 30;
      pane.append(line);
      while (pane.childNodes.length > MAX_LINES) pane.firstChild.remove();
      if (atBottom) pane.scrollTop = pane.scrollHeight;
      return line;
    }

    function packetLine(ts, kind, bytes, peer) {
      if (kind === 0 || kind === 1) {
        return add(h("div", { class: "line conn" }, `${fmtClock(ts)} ── ${kind === 0 ? "connected" : "disconnected"}${peer ? " " + peer : ""}`));
      }
      const dir = kind === 3 ? "out" : "in";
      const arrow = dir === "out" ? "⇠ out" : "⇢ in ";
      const body = isText(bytes) && !hexAll.checked ? printable(bytes) : hexOf(bytes);
      return add(h("div", { class: `line ${dir}` }, h("span", { class: "t" }, fmtClock(ts)), ` ${arrow} `, h("span", { class: "data" }, body),
        h("span", { class: "len" }, ` (${bytes.length} B)`)));
    }

    function commandLine(c) {
      const text = `${fmtClock(c.timestamp || c.created)} ⌘ #${c.id} ${c.name} ${c.properties && Object.keys(c.properties).length ? JSON.stringify(c.properties) : ""} · `;
      const status = h("span", { class: `cmd-status ${c.status}` }, c.status);
      const children = [text, status];
      if (c.reason) children.push(` · ${c.reason}`);
      if (c.response) children.push(h("pre", { class: "reply" }, c.response));
      const el = h("div", { class: "line cmd", dataset: { command: c.id } }, children);
      const old = commandLines.get(c.id);
      if (old && old.isConnected) {
        old.replaceWith(el);
      } else {
        add(el);
      }
      commandLines.set(c.id, el);
    }

    async function start() {
      if (source) source.close();
      source = null;
      clear(pane);
      commandLines.clear();
      clear(hint);
      if (!deviceId) {
        pane.append(h("div", { class: "line" }, "Choose a device."));
        return;
      }
      try {
        const [row] = await api("GET", `/gw/devices/${deviceId}/commands`);
        catalog = (row && row.commands) || [];
        clear(datalist).append(...catalog.map((c) => new Option(usage(c), c.name)));
        const recent = await api("GET", `/gw/devices/${deviceId}/packets?${data({ count: 60, reverse: true })}`);
        for (const p of recent.reverse()) packetLine(p.timestamp, p.type & 127, bytesFromBase64(p.data), p.peer);
        if (recent.length) add(h("div", { class: "line conn" }, "── live from here ──"));
      } catch (err) {
        pane.append(h("div", { class: "line error" }, err.message));
      }
      source = stream(String(deviceId), ["packet", "message", "command", "log"], {
        packet: (e) => packetLine(e.data.timestamp, e.data.type & 127, bytesFromHex(e.data.hex || ""), null),
        message: (e) => add(h("div", { class: "line msg" }, `         ↳ ${summary(e.data)}`)),
        command: (e) => commandLine(e.data),
        log: (e) => {
          if (e.data && e.data.event && e.data.event !== "connect" && e.data.event !== "disconnect") {
            add(h("div", { class: "line conn" }, `${fmtClock()} ── ${e.data.event}${e.data.reason ? ": " + e.data.reason : ""}`));
          }
        },
      });
    }

    function complete() {
      const text = input.value;
      if (/\s/.test(text.trim())) return false;
      const matches = catalog.map((c) => c.name).filter((n) => n.startsWith(text.trim()));
      if (!matches.length) return false;
      let common = matches[0];
      for (const m of matches) while (!m.startsWith(common)) common = common.slice(0, -1);
      input.value = matches.length === 1 ? matches[0] + " " : common;
      showHint();
      return true;
    }

    function showHint() {
      const word = input.value.trim().split(/\s+/)[0] || "";
      const matches = catalog.filter((c) => c.name.startsWith(word));
      clear(hint);
      if (!word) return;
      if (!matches.length) {
        hint.append(`not a catalog command: sent as raw text (custom payload)`);
        return;
      }
      for (const c of matches.slice(0, 6)) hint.append(h("div", {}, h("strong", {}, usage(c)), ` — ${c.description || ""}`));
    }

    if (!session.readOnly) {
      input.addEventListener("keydown", (e) => {
        if (e.key === "Tab" && !e.shiftKey && input.value.trim()) {
          if (complete()) e.preventDefault();
        } else if (e.key === "ArrowUp" && history.length) {
          historyAt = Math.max(0, historyAt - 1);
          input.value = history[historyAt] || "";
          e.preventDefault();
        } else if (e.key === "ArrowDown" && history.length) {
          historyAt = Math.min(history.length, historyAt + 1);
          input.value = history[historyAt] || "";
          e.preventDefault();
        }
      });
      input.addEventListener("input", showHint);
      prompt.addEventListener("submit", async (e) => {
        e.preventDefault();
        const line = input.value.trim();
        if (!line || !deviceId) return;
        history.push(line);
        historyAt = history.length;
        let cmd;
        try {
          cmd = parseLine(line, catalog);
        } catch (err) {
          add(h("div", { class: "line error" }, `${line}: ${err.message}`));
          return;
        }
        const ok = await confirmCommand(deviceId, cmd.name, cmd.properties, catalog.find((c) => c.name === cmd.name));
        input.focus();
        if (ok === null) {
          add(h("div", { class: "line muted" }, `${fmtClock()} ⌘ ${line} · not sent`));
          return;
        }
        input.value = "";
        clear(hint);
        try {
          const [c] = await api("POST", `/gw/devices/${deviceId}/commands`, [{ name: cmd.name, properties: cmd.properties, ...ok }]);
          if (c) commandLine(c);
        } catch (err) {
          add(h("div", { class: "line error" }, `${fmtClock()} ⌘ ${line} · ${err.message}`));
        }
      });
    }

    await start();
    return {
      destroy() {
        if (source) source.close();
        picker.dispose();
      },
    };
  },
};
