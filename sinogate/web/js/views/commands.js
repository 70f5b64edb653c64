// Commands: the device's catalog as forms built from each command's JSON schema, send now
// (real-time, waits for the reply) or queue; the queue with cancel; recent results with replies.

import { api, data, routes, session } from "../api.js";
import { clear, fmtTime, h, notice, toast } from "../dom.js";
import { devicePicker, fleet } from "../live.js";
import { confirmCommand, isDestructive } from "../guard.js";
import { schemaForm } from "../schemaform.js";

export function statusBadge(c) {
  return h("span", { class: `cmd-status ${c.status}` }, c.status);
}

export default {
  id: "commands",
  title: "Commands",
  perDevice: true,
  async mount(root, ctx) {
    let deviceId = ctx.deviceId;
    let catalog = [];
    let support = new Map(); // command name -> [{code, status, verdict, alternative, reply_time}]
    const picker = devicePicker(deviceId, (id) => { deviceId = id; ctx.app.setDevice(id); load(); });
    const formBox = h("section", { class: "panel", id: "command-form-box" });
    const queueBox = h("section", { class: "panel", id: "command-queue" });
    const resultsBox = h("section", { class: "panel", id: "command-results" });
    root.append(h("div", { class: "toolbar" }, h("h2", {}, "Commands"), picker,
      deviceId ? h("a", { href: ctx.app.link("console", deviceId) }, "console") : null),
    h("div", { class: "split even" }, formBox, h("div", { class: "stack" }, queueBox, resultsBox)));

    async function load() {
      clear(formBox);
      clear(queueBox);
      clear(resultsBox);
      if (!deviceId) {
        formBox.append(notice("Choose a device.", "info"));
        return;
      }
      try {
        const [row] = await api("GET", `/gw/devices/${deviceId}/commands`);
        catalog = (row && row.commands) || [];
      } catch (err) {
        formBox.append(notice(err.message, "error"));
        return;
      }
      support = new Map();
      if (routes.support()) {
        try {
          const [row] = await api("GET", `/gw/devices/${deviceId}/command-support`);
          for (const item of (row && row.commands) || []) {
            if (!support.has(item.name)) support.set(item.name, []);
            support.get(item.name).push(item);
          }
        } catch { /* the form works without it */ }
      }
      renderForm();
      refresh();
    }

    // What this device has been seen to answer, per command (and raw code).
    function supportNote(name) {
      const items = (support.get(name) || []).filter((i) => i.status !== "untried");
      if (!items.length) return support.size ? h("p", { class: "muted support" }, "Never sent to this device yet.") : null;
      return h("ul", { class: "support" }, items.map((i) => h("li", { class: `support-${i.status}` },
        i.code ? h("code", {}, i.code) : null, i.code ? " " : null, i.verdict,
        i.reply_time ? ` · replies in ${i.reply_time} s` : null,
        i.alternative ? h("span", {}, ` · worked instead: `, h("code", {}, i.alternative.name), i.alternative.code ? ` ${i.alternative.code}` : null, ` (${i.alternative.verdict})`) : null)));
    }

    function optionLabel(c) {
      const seen = (support.get(c.name) || []).filter((i) => i.status !== "untried");
      const ignored = seen.length && seen.every((i) => i.status === "ignored");
      return `${c.name}${isDestructive(c.name, {}, c) ? " ⚠" : ""}${ignored ? " (ignored so far)" : ""}`;
    }

    function renderForm() {
      clear(formBox).append(h("h3", {}, "Send a command"));
      if (session.readOnly) {
        formBox.append(notice("This token is read-only: it can see the commands and their results, not send them.", "muted"));
        formBox.append(h("ul", { class: "catalog-names" }, catalog.map((c) => h("li", {}, h("code", {}, c.name), " ", c.description))));
        return;
      }
      const select = h("select", { id: "command-name", "aria-label": "Command" }, catalog.map((c) => new Option(optionLabel(c), c.name)));
      const holder = h("div");
      const ttl = h("input", { type: "number", min: 1, step: 1, id: "command-ttl", placeholder: "default", "aria-label": "Queue TTL (s)" });
      const result = h("div", { id: "command-result", "aria-live": "polite" });
      let form = null;
      const show = () => {
        const entry = catalog.find((c) => c.name === select.value);
        clear(holder);
        if (!entry) return;
        form = schemaForm(entry.schema || {}, {}, { idPrefix: "prop" });
        holder.append(h("div", {},
          h("p", { class: "description" }, entry.description || ""),
          supportNote(entry.name),
          isDestructive(entry.name, {}, entry) ? notice("Destructive: the page asks before sending it and refuses while the vehicle drives.", "warn") : null,
          form.element,
          (entry.examples || []).length ? h("div", { class: "examples" }, "Examples: ", entry.examples.map((ex) =>
            h("button", { type: "button", class: "small secondary", onclick: () => form.set(ex.properties || {}) }, JSON.stringify(ex.properties || {})))) : null,
          h("small", { class: "muted" }, "Addresses: ", (entry.address || ["connection"]).join(", "))));
      };
      select.addEventListener("change", show);
      const send = async (mode) => {
        const entry = catalog.find((c) => c.name === select.value);
        const { value, errors } = form.read();
        if (errors.length) {
          clear(result).append(notice(errors.join("; "), "error"));
          return;
        }
        const ok = await confirmCommand(deviceId, entry.name, value, entry);
        if (ok === null) {
          clear(result).append(notice("Not sent.", "muted"));
          return;
        }
        const item = { name: entry.name, properties: value, ...ok };
        if (mode === "queue" && ttl.value) item.ttl = Number(ttl.value);
        clear(result).append(h("p", { class: "muted" }, mode === "now" ? "Sending, waiting for the device's reply…" : "Queueing…"));
        try {
          const [c] = await api("POST", `/gw/devices/${deviceId}/${mode === "now" ? "commands" : "commands-queue"}`, [item]);
          clear(result).append(h("div", { class: "command-outcome" }, h("p", {}, `#${c.id} ${c.name} `, statusBadge(c)),
            c.response ? h("pre", { class: "mono reply" }, c.response) : null));
        } catch (err) {
          clear(result).append(notice(err.message, "error"));
        }
        refresh();
      };
      // The text to send by SMS instead (with the device's SMS password), for commands that have one.
      const smsText = async () => {
        const entry = catalog.find((c) => c.name === select.value);
        const { value, errors } = form.read();
        if (errors.length) {
          clear(result).append(notice(errors.join("; "), "error"));
          return;
        }
        try {
          const [sms] = await api("GET", `/gw/devices/${deviceId}/sms?name=${encodeURIComponent(entry.name)}&properties=${encodeURIComponent(JSON.stringify(value))}`);
          clear(result).append(h("div", { class: "command-outcome" },
            h("p", {}, `SMS to ${sms.phone || "the device's SIM"}:`), h("pre", { class: "mono reply", id: "sms-text" }, sms.text),
            sms.note ? h("p", { class: "muted" }, sms.note) : null));
        } catch (err) {
          clear(result).append(notice(err.message, "error"));
        }
      };
      const smsButton = h("button", { type: "button", class: "secondary", id: "command-sms", onclick: smsText }, "SMS text");
      const syncSms = () => { smsButton.hidden = !(catalog.find((c) => c.name === select.value)?.address || []).includes("sms"); };
      select.addEventListener("change", syncSms);
      const now = h("button", { type: "button", id: "command-send", onclick: () => send("now") }, "Send now");
      const queue = h("button", { type: "button", class: "secondary", id: "command-queue-button", onclick: () => send("queue") }, "Queue");
      formBox.append(h("form", { class: "stack", id: "command-form", onsubmit: (e) => { e.preventDefault(); send("now"); } },
        h("label", { class: "field" }, h("span", { class: "label" }, "Command"), select), holder,
        h("div", { class: "row" }, now, queue, h("label", { class: "inline" }, "queue TTL (s) ", ttl), smsButton), result));
      show();
      syncSms();
    }

    async function refresh() {
      if (!deviceId) return;
      let queue = [], results = [];
      try {
        [queue, results] = await Promise.all([
          api("GET", `/gw/devices/${deviceId}/commands-queue`),
          api("GET", `/gw/devices/${deviceId}/commands-result?${data({ count: 20, reverse: true })}`),
        ]);
      } catch (err) {
        clear(queueBox).append(notice(err.message, "error"));
        return;
      }
      clear(queueBox).append(h("h3", {}, `Queue (${queue.length})`));
      if (!queue.length) queueBox.append(h("p", { class: "muted" }, "Nothing waiting: queued commands go out when the device connects."));
      else queueBox.append(table(queue, true));
      clear(resultsBox).append(h("h3", {}, "Recent results"));
      if (!results.length) resultsBox.append(h("p", { class: "muted" }, "No command yet."));
      else resultsBox.append(table(results, false));
    }

    function table(items, cancellable) {
      return h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["#", "Command", "Status", "Time", "Reply", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, items.map((c) => h("tr", { dataset: { id: c.id } },
          h("td", {}, String(c.id)),
          h("td", {}, h("code", {}, c.name), c.properties && Object.keys(c.properties).length ? h("small", { class: "mono" }, " " + JSON.stringify(c.properties)) : null),
          h("td", {}, statusBadge(c)),
          h("td", {}, fmtTime(c.finished || c.sent || c.created)),
          h("td", {}, c.response ? h("pre", { class: "mono reply" }, c.response) : c.reason || ""),
          h("td", {}, cancellable && !session.readOnly ? h("button", { type: "button", class: "small danger", onclick: () => cancel(c) }, "Cancel") : null)))));
    }

    async function cancel(c) {
      try {
        await api("DELETE", `/gw/devices/${deviceId}/commands-queue/${c.id}`);
        toast(`Command #${c.id} canceled`, "ok");
      } catch (err) {
        toast(err.message, "error");
      }
      refresh();
    }

    let pending = null;
    const onCommand = (e) => {
      if (e.detail.device_id !== deviceId) return;
      clearTimeout(pending);
      pending = setTimeout(refresh, 300);
    };
    fleet.addEventListener("command", onCommand);
    await load();
    return { destroy() { fleet.removeEventListener("command", onCommand); picker.dispose(); clearTimeout(pending); } };
  },
};
