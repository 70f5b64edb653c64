// Device list and management: search, state columns, add / rename / enable / disable / delete,
// per-device settings from the settings schema, and unknown idents with "claim".

import { api, session } from "../api.js";
import { ago, bytesFromHex, clear, dialog, field, fmtValue, formDialog, h, notice, printable, stateDot, throttle, toast } from "../dom.js";
import { fleet, stateOf } from "../live.js";
import { schemaForm } from "../schemaform.js";

const COLUMNS = [
  ["state", "State"], ["name", "Name"], ["ident", "Ident"], ["protocol", "Protocol"], ["online", "Online"],
  ["last", "Last seen"], ["speed", "Speed"], ["ignition", "Ignition"], ["battery", "Battery"], ["signal", "Signal"],
];

function battery(v) {
  if (typeof v["battery.level"] === "number") return `${fmtValue(v["battery.level"])} %`;
  if (typeof v["battery.voltage"] === "number") return `${fmtValue(v["battery.voltage"])} V`;
  if (typeof v["external.powersource.voltage"] === "number") return `ext ${fmtValue(v["external.powersource.voltage"])} V`;
  return "–";
}

export default {
  id: "devices",
  title: "Devices",
  perDevice: false,
  async mount(root, ctx) {
    const canWrite = !session.readOnly;
    const canCreate = canWrite && !session.limited;
    const search = h("input", { type: "search", placeholder: "Search name, ident, id", "aria-label": "Search devices", id: "device-search" });
    const addButton = canCreate ? h("button", { type: "button", id: "add-device", onclick: () => addDevice() }, "Add device") : null;
    const body = h("tbody");
    const table = h("table", { class: "grid", id: "devices-table" },
      h("thead", {}, h("tr", {}, COLUMNS.map(([, label]) => h("th", { scope: "col" }, label)), h("th", { scope: "col" }, "Actions"))), body);
    const idents = h("section", { class: "panel", id: "unknown-idents" });
    root.append(h("section", { class: "panel" },
      h("div", { class: "toolbar" }, h("h2", {}, "Devices"), search, addButton),
      h("div", { class: "table-wrap" }, table)));
    if (!session.limited) root.append(idents);

    function render() {
      const q = search.value.trim().toLowerCase();
      clear(body);
      for (const entry of fleet.list()) {
        const d = entry.device, v = entry.values, state = stateOf(entry);
        const ident = d.configuration?.ident || "";
        if (q && !`${d.name} ${ident} ${d.id} ${d.protocol}`.toLowerCase().includes(q)) continue;
        const actions = h("div", { class: "actions" },
          h("a", { href: ctx.app.link("history", d.id) }, "History"),
          h("a", { href: ctx.app.link("console", d.id) }, "Console"),
          h("button", { type: "button", class: "small secondary", onclick: () => settings(d.id) }, "Settings"),
          canWrite ? h("button", { type: "button", class: "small secondary", onclick: () => rename(d) }, "Rename") : null,
          canWrite ? h("button", { type: "button", class: "small secondary", onclick: () => toggle(d) }, d.enabled ? "Disable" : "Enable") : null,
          canWrite ? h("button", { type: "button", class: "small danger", onclick: () => remove(d) }, "Delete") : null);
        body.append(h("tr", { dataset: { id: d.id }, class: d.enabled ? "" : "disabled" },
          h("td", {}, stateDot(state), " ", state),
          h("td", {}, h("a", { href: ctx.app.link("telemetry", d.id) }, d.name || ident), d.enabled ? null : h("span", { class: "badge" }, "disabled")),
          h("td", { class: "mono" }, ident),
          h("td", {}, d.protocol),
          h("td", { class: d.connected ? "on" : "off" }, d.connected ? "online" : "offline"),
          h("td", { title: d.last_active ? new Date(d.last_active * 1000).toLocaleString() : "" }, ago(d.last_active)),
          h("td", { class: "num" }, typeof v["position.speed"] === "number" ? `${fmtValue(v["position.speed"])} km/h` : "–"),
          h("td", {}, v["engine.ignition.status"] === undefined ? "–" : v["engine.ignition.status"] ? "on" : "off"),
          h("td", { class: "num" }, battery(v)),
          h("td", { class: "num" }, v["gsm.signal.level"] === undefined ? "–" : `${v["gsm.signal.level"]}/31`),
          h("td", {}, actions)));
      }
      if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: COLUMNS.length + 1, class: "empty" }, fleet.entries.size ? "No device matches." : "No devices yet.")));
    }

    async function renderIdents() {
      if (session.limited) return;
      clear(idents).append(h("h2", {}, "Unknown idents"));
      let rows = [];
      try {
        rows = (await api("GET", "/gw/channels/all/idents")).filter((r) => r.unknown);
      } catch (err) {
        idents.append(notice(`Cannot list idents: ${err.message}`, "error"));
        return;
      }
      if (!rows.length) {
        idents.append(h("p", { class: "muted" }, "Every ident that reported is a device (with auto-registration off, new trackers show up here)."));
        return;
      }
      const tbody = h("tbody");
      for (const r of rows) {
        tbody.append(h("tr", {},
          h("td", { class: "mono" }, r.ident), h("td", {}, r.protocol || ""), h("td", {}, String(r.channel_id)),
          h("td", { class: "mono" }, r.peer || ""),
          h("td", {}, ago(r.last_seen)),
          h("td", { class: "mono sample", title: r.sample || "" }, printable(bytesFromHex(r.sample || "")).slice(0, 48)),
          h("td", {}, canCreate ? h("button", { type: "button", class: "small", onclick: () => claim(r) }, "Claim") : "")));
      }
      idents.append(h("table", { class: "grid" }, h("thead", {}, h("tr", {},
        ["Ident", "Protocol", "Channel", "Peer", "Last seen", "First bytes", ""].map((t) => h("th", { scope: "col" }, t)))), tbody));
    }

    async function claim(r) {
      const values = await formDialog({
        title: `Claim ${r.ident}`, submit: "Create device",
        fields: [field("Name", h("input", { name: "name", value: r.ident, required: true }))],
      });
      if (!values) return;
      await run(() => api("POST", "/gw/devices", [{ name: values.name, configuration: { ident: r.ident }, protocol: r.protocol }]), `Device ${values.name} created`);
      renderIdents();
    }

    async function addDevice() {
      const values = await formDialog({
        title: "Add device", submit: "Create",
        fields: [
          field("Name", h("input", { name: "name", required: true })),
          field("Ident (IMEI / terminal number)", h("input", { name: "ident", required: true, pattern: "[0-9A-Za-z]{1,32}" })),
          field("Protocol", h("select", { name: "protocol" }, new Option("H02 (Sinotrack)", "h02"), new Option("JT/T 808", "jt808"))),
          field("SIM phone (for SMS)", h("input", { name: "phone", type: "tel" })),
        ],
      });
      if (!values) return;
      const conf = { ident: values.ident.trim() };
      if (values.phone) conf.phone = values.phone.trim();
      await run(() => api("POST", "/gw/devices", [{ name: values.name.trim(), configuration: conf, protocol: values.protocol }]), `Device ${values.name} created`);
    }

    async function rename(d) {
      const values = await formDialog({ title: `Rename ${d.name}`, fields: [field("Name", h("input", { name: "name", value: d.name || "", required: true }))] });
      if (values) await run(() => api("PUT", `/gw/devices/${d.id}`, { name: values.name.trim() }), "Renamed");
    }

    async function toggle(d) {
      await run(() => api("PUT", `/gw/devices/${d.id}`, { enabled: !d.enabled }), d.enabled ? "Disabled (its connection is closed)" : "Enabled");
    }

    async function remove(d) {
      const ok = await dialog({
        title: `Delete ${d.name}?`,
        body: [h("p", {}, `Device #${d.id} (${d.configuration?.ident}) and its connection go away; its stored messages stay until they expire.`)],
        buttons: [{ label: "Delete", value: true, kind: "danger" }],
      });
      if (ok) await run(() => api("DELETE", `/gw/devices/${d.id}`), "Deleted");
    }

    async function settings(id) {
      const entry = fleet.get(id);
      if (!entry) return;
      const d = entry.device;
      const schema = structuredClone(session.config.settings_schema || { properties: {} });
      for (const [name, spec] of Object.entries(schema.properties)) {
        if (spec["x-protocols"] && !spec["x-protocols"].includes(d.protocol)) delete schema.properties[name];
      }
      const current = d.settings || {};
      // the device's own settings first; the pipeline handlers' options folded under "Analytics"
      const part = (advanced) => ({ type: "object", properties: Object.fromEntries(
        Object.entries(schema.properties).filter(([, spec]) => !!spec["x-handler"] === advanced)) });
      const form = schemaForm(part(false), current, { idPrefix: "setting", readOnly: !canWrite });
      const more = schemaForm(part(true), current, { idPrefix: "setting", readOnly: !canWrite });
      const extra = Object.keys(current).filter((k) => !(k in schema.properties));
      const result = await dialog({
        title: `Settings of ${d.name}`, className: "wide",
        body: [form.element,
          h("details", { class: "advanced" }, h("summary", {}, "Analytics and filters (server defaults unless set here)"), more.element),
          extra.length ? h("p", { class: "muted" }, `Other settings kept as they are: ${extra.join(", ")}`) : null],
        buttons: canWrite ? [{ label: "Save", value: "save" }] : [],
      });
      if (result !== "save") return;
      const first = form.read(), second = more.read();
      const value = { ...first.value, ...second.value }, errors = [...first.errors, ...second.errors];
      if (errors.length) {
        toast(errors.join("; "), "error");
        return;
      }
      const merged = {};
      for (const k of extra) merged[k] = current[k];
      Object.assign(merged, value);
      await run(() => api("PUT", `/gw/devices/${d.id}`, { settings: merged }), "Settings saved");
    }

    async function run(fn, ok) {
      try {
        await fn();
        toast(ok, "ok");
        await fleet.refreshDevices();
      } catch (err) {
        toast(err.message, "error", 8000);
      }
    }

    // Live updates re-render the table, but not under the user's keyboard focus.
    // Live updates re-render the table; the keyboard focus stays on the same control of the same row.
    const onChange = throttle(() => {
      const active = document.activeElement;
      const row = table.contains(active) ? active.closest("tr[data-id]") : null;
      const key = row ? [row.dataset.id, active.textContent] : null;
      render();
      if (key) {
        const again = [...body.querySelectorAll(`tr[data-id="${key[0]}"] a, tr[data-id="${key[0]}"] button`)].find((el) => el.textContent === key[1]);
        if (again) again.focus();
      }
    }, 1000);
    fleet.addEventListener("change", onChange);
    search.addEventListener("input", render);
    render();
    renderIdents();
    return { destroy() { fleet.removeEventListener("change", onChange); } };
  },
};
