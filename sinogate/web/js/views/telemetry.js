// Telemetry: a device's latest value of every parameter, grouped (position, motion, power, GSM,
// alarms, other), alarms that are on first and highlighted, units shown, numbers rounded.

import { api } from "../api.js";
import { ago, clear, fmtTime, h, notice, throttle, withUnit } from "../dom.js";
import { devicePicker, fleet, stateOf } from "../live.js";
import { GROUPS, groupOf, orderFields, parameters } from "../params.js";

export default {
  id: "telemetry",
  title: "Telemetry",
  perDevice: true,
  async mount(root, ctx) {
    let deviceId = ctx.deviceId;
    const registry = await parameters();
    const picker = devicePicker(deviceId, (id) => { deviceId = id; ctx.app.setDevice(id); load(); });
    const search = h("input", { type: "search", placeholder: "Filter names", "aria-label": "Filter parameter names" });
    const header = h("div", { class: "device-head", id: "telemetry-head" });
    const content = h("div", { class: "telemetry-groups", id: "telemetry" });
    root.append(h("div", { class: "toolbar" }, h("h2", {}, "Telemetry"), picker, search), header, content);
    let values = {}; // name -> {value, ts}

    async function load() {
      values = {};
      clear(content);
      clear(header);
      if (!deviceId) {
        content.append(notice("Choose a device.", "info"));
        return;
      }
      try {
        const [row] = await api("GET", `/gw/devices/${deviceId}/telemetry/all`);
        values = (row && row.telemetry) || {};
      } catch (err) {
        content.append(notice(err.message, "error"));
        return;
      }
      render();
    }

    function render() {
      clear(content);
      clear(header);
      const entry = fleet.get(deviceId);
      if (entry) {
        const d = entry.device;
        header.append(h("span", {}, h("strong", {}, d.name), ` · ${d.protocol} · ident ${d.configuration?.ident} · ${stateOf(entry)} · ${d.connected ? "online" : "offline"} · last seen ${ago(d.last_active)}`,
          " · ", ["history", "messages", "console", "commands"].map((v) => [h("a", { href: ctx.app.link(v, d.id) }, v), " "])));
      }
      const q = search.value.trim().toLowerCase();
      const names = orderFields(Object.keys(values)).filter((n) => !q || n.toLowerCase().includes(q));
      if (!names.length) {
        content.append(h("p", { class: "muted" }, Object.keys(values).length ? "No parameter matches." : "No telemetry yet."));
        return;
      }
      const newest = Math.max(0, ...Object.values(values).map((v) => v.ts || 0));
      const on = names.filter((n) => groupOf(n) === "alarms" && values[n].value === true && (values[n].ts || 0) >= newest - 1);
      if (on.length) {
        content.append(h("section", { class: "group alarms-on", id: "alarms-on", role: "alert" },
          h("h3", {}, `Alarms on (${on.length})`),
          table(on, true)));
      }
      for (const key of ["position", "motion", "power", "gsm", "alarms", "other"]) {
        const title = GROUPS.find((g) => g[0] === key)[1];
        const members = names.filter((n) => groupOf(n) === key && !on.includes(n));
        if (!members.length) continue;
        const section = h("section", { class: `group group-${key}` }, h("h3", {}, title), table(members, false));
        if (key === "alarms") {
          // quiet alarms take space without telling anything: folded
          section.replaceChildren(h("details", {}, h("summary", {}, `${title}: ${members.length} off`), table(members, false)));
        }
        content.append(section);
      }
    }

    function table(names, alarm) {
      return h("table", { class: "kv" }, h("tbody", {}, names.map((n) => {
        const item = values[n];
        const meta = registry.get(n);
        return h("tr", { class: alarm ? "alarm" : "", dataset: { name: n } },
          h("th", { scope: "row", title: meta?.description || "" }, n),
          h("td", { class: typeof item.value === "number" ? "num" : "" }, n === "timestamp" ? fmtTime(item.value) : withUnit(item.value, n, meta?.unit)),
          h("td", { class: "muted", title: fmtTime(item.ts) }, ago(item.ts)));
      })));
    }

    const renderSoon = throttle(render, 1000);
    const onMessage = (e) => {
      if (e.detail.device_id !== deviceId) return;
      const m = e.detail.data || {};
      const ts = m.timestamp || 0;
      for (const [k, v] of Object.entries(m)) {
        if (!values[k] || (values[k].ts || 0) <= ts) values[k] = { value: v, ts };
      }
      renderSoon();
    };
    fleet.addEventListener("message", onMessage);
    search.addEventListener("input", render);
    await load();
    return { destroy() { fleet.removeEventListener("message", onMessage); picker.dispose(); } };
  },
};
