// Messages: a table over /messages with the columns the user picks (position first), the filter
// expression, a time range and paging by time cursor; a row opens the whole message and its raw
// packet.

import { api, data } from "../api.js";
import { bytesFromBase64, clear, dialog, fmtTime, fromLocalInput, h, hexOf, isText, notice, printable, toLocalInput, withUnit } from "../dom.js";
import { devicePicker } from "../live.js";
import { DEFAULT_COLUMNS, orderFields, parameters } from "../params.js";

const COLUMNS_KEY = "sinogate.columns";

function savedColumns() {
  try {
    const cols = JSON.parse(localStorage.getItem(COLUMNS_KEY));
    if (Array.isArray(cols) && cols.length) return cols;
  } catch { /* default columns */ }
  return DEFAULT_COLUMNS;
}

export default {
  id: "messages",
  title: "Messages",
  perDevice: true,
  async mount(root, ctx) {
    let deviceId = ctx.deviceId;
    let columns = savedColumns();
    const registry = await parameters();
    const picker = devicePicker(deviceId, (id) => { deviceId = id; ctx.app.setDevice(id); first(); });
    const from = h("input", { type: "datetime-local", step: 1, "aria-label": "From", id: "messages-from" });
    const to = h("input", { type: "datetime-local", step: 1, "aria-label": "To (empty: now)", id: "messages-to" });
    if (ctx.params.from) from.value = toLocalInput(Number(ctx.params.from));
    if (ctx.params.to) to.value = toLocalInput(Number(ctx.params.to));
    const filter = h("input", { type: "text", class: "mono grow", id: "messages-filter", value: ctx.params.filter || "",
      placeholder: "filter, e.g. position.speed>60 && engine.ignition.status==true", "aria-label": "Filter expression" });
    const size = h("select", { "aria-label": "Rows per page" }, ["25", "50", "100", "200"].map((n) => new Option(`${n} rows`, n)));
    size.value = "50";
    const form = h("form", { class: "toolbar", id: "messages-form" }, h("h2", {}, "Messages"), picker,
      h("label", { class: "inline" }, "From ", from), h("label", { class: "inline" }, "To ", to), filter, size,
      h("button", { type: "submit" }, "Show"),
      h("button", { type: "button", class: "secondary", onclick: () => chooseColumns() }, "Columns…"));
    form.addEventListener("submit", (e) => { e.preventDefault(); first(); });
    const head = h("thead");
    const body = h("tbody");
    const table = h("table", { class: "grid messages", id: "messages-table" }, head, body);
    const status = h("span", { class: "muted", id: "messages-status" });
    const newer = h("button", { type: "button", class: "secondary small", onclick: () => page(-1) }, "◀ Newer");
    const older = h("button", { type: "button", class: "secondary small", onclick: () => page(+1) }, "Older ▶");
    const detail = h("aside", { class: "panel detail", id: "message-detail", hidden: true });
    root.append(form, h("div", { class: "split wide-side" },
      h("section", { class: "panel" }, h("div", { class: "table-wrap" }, table), h("div", { class: "pager" }, newer, status, older)),
      detail));

    // Paging by time cursor: a page is {to, skip}; rows come newest first.
    let pages = [];
    let rows = [];

    function query(cursor) {
      const q = { count: Number(size.value) + cursor.skip, reverse: true };
      const a = from.value ? fromLocalInput(from.value) : null;
      if (a !== null) q.from = a;
      if (cursor.to !== null) q.to = cursor.to;
      if (filter.value.trim()) q.filter = filter.value.trim();
      return q;
    }

    async function first() {
      const b = to.value ? fromLocalInput(to.value) : null;
      pages = [{ to: b, skip: 0 }];
      await show();
    }

    async function page(direction) {
      if (direction < 0) {
        if (pages.length > 1) pages.pop();
      } else {
        if (!rows.length) return;
        const oldest = rows[rows.length - 1].timestamp;
        const same = rows.filter((r) => r.timestamp === oldest).length;
        const current = pages[pages.length - 1];
        pages.push({ to: oldest, skip: current.to === oldest ? current.skip + same : same });
      }
      await show();
    }

    async function show() {
      clear(body);
      detail.hidden = true;
      if (!deviceId) {
        status.textContent = "Choose a device.";
        return;
      }
      const cursor = pages[pages.length - 1];
      status.textContent = "Loading…";
      try {
        rows = (await api("GET", `/gw/devices/${deviceId}/messages?${data(query(cursor))}`)).slice(cursor.skip);
      } catch (err) {
        rows = [];
        status.textContent = "";
        body.append(h("tr", {}, h("td", { colspan: columns.length }, notice(err.message, "error"))));
        renderHead();
        return;
      }
      // "now" becomes the newest row's time: coming back with Newer shows this very page again
      if (cursor.to === null && rows.length && cursor.skip === 0) cursor.to = rows[0].timestamp;
      renderHead();
      for (const m of rows) {
        const tr = h("tr", { tabindex: 0, class: "clickable", onclick: () => open(m, tr),
          onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(m, tr); } } },
        columns.map((c) => h("td", { class: typeof m[c] === "number" ? "num" : "" },
          c === "timestamp" ? fmtTime(m[c]) : withUnit(m[c], c, registry.get(c)?.unit))));
        body.append(tr);
      }
      if (!rows.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "No messages.")));
      status.textContent = rows.length ? `${rows.length} messages · ${fmtTime(rows[rows.length - 1].timestamp)} – ${fmtTime(rows[0].timestamp)} · page ${pages.length}` : `page ${pages.length}`;
      newer.disabled = pages.length <= 1;
      older.disabled = rows.length < Number(size.value);
    }

    function renderHead() {
      clear(head).append(h("tr", {}, columns.map((c) => {
        const unit = /latitude|longitude|timestamp/.test(c) ? null : registry.get(c)?.unit;
        return h("th", { scope: "col", title: registry.get(c)?.description || c }, c, unit ? h("small", {}, ` ${unit}`) : null);
      })));
    }

    async function chooseColumns() {
      const names = new Set([...columns, ...DEFAULT_COLUMNS]);
      for (const m of rows) for (const k of Object.keys(m)) names.add(k);
      const boxes = orderFields(names).map((n) => h("label", { class: "check" },
        h("input", { type: "checkbox", value: n, checked: columns.includes(n) }), " ", n));
      const result = await dialog({
        title: "Columns", className: "wide",
        body: [h("p", { class: "muted" }, "Names seen in this page and the defaults; position first."), h("div", { class: "columns-list" }, boxes)],
        buttons: [{ label: "Apply", value: "apply" }, { label: "Defaults", value: "defaults", kind: "secondary" }],
      });
      if (!result) return;
      columns = result === "defaults" ? DEFAULT_COLUMNS : orderFields(boxes.map((b) => b.firstChild).filter((i) => i.checked).map((i) => i.value));
      if (!columns.length) columns = DEFAULT_COLUMNS;
      localStorage.setItem(COLUMNS_KEY, JSON.stringify(columns));
      await show();
    }

    async function open(m, tr) {
      for (const other of body.querySelectorAll("tr.selected")) other.classList.remove("selected");
      tr.classList.add("selected");
      detail.hidden = false;
      const dl = h("table", { class: "kv" }, h("tbody", {}, orderFields(Object.keys(m)).map((k) => {
        const unit = registry.get(k)?.unit;
        return h("tr", { class: /\.(alarm|event)$/.test(k) && m[k] === true ? "alarm" : "" },
          h("th", { scope: "row", title: registry.get(k)?.description || "" }, k),
          h("td", {}, k.endsWith("timestamp") ? `${fmtTime(m[k])} (${m[k]})` : withUnit(m[k], k, unit)));
      })));
      const raw = h("div", { class: "raw", id: "message-raw" }, h("p", { class: "muted" }, "Looking for the raw packet…"));
      clear(detail).append(
        h("div", { class: "toolbar" }, h("h3", {}, `Message ${fmtTime(m.timestamp)}`),
          h("button", { type: "button", class: "small secondary", onclick: () => { detail.hidden = true; tr.focus(); } }, "Close")),
        h("h4", {}, "Raw packet"), raw, h("h4", {}, "All fields"), dl);
      detail.scrollTop = 0;
      const st = m["server.timestamp"];
      if (typeof st !== "number") {
        clear(raw).append(h("p", { class: "muted" }, "This message has no reception time."));
        return;
      }
      try {
        const packets = await api("GET", `/gw/devices/${deviceId}/packets?${data({ from: st - 0.05, to: st + 0.05, count: 20 })}`);
        const incoming = packets.filter((p) => (p.type & 127) === 2).sort((p, q) => Math.abs(p.timestamp - st) - Math.abs(q.timestamp - st));
        clear(raw);
        if (!incoming.length) {
          raw.append(h("p", { class: "muted" }, m.transport === "http" ? "Posted through the API: no raw packet." : "No raw packet kept for this message (packets expire after packets_ttl_days)."));
          return;
        }
        const bytes = bytesFromBase64(incoming[0].data);
        raw.append(h("p", { class: "muted" }, `${bytes.length} bytes from ${incoming[0].peer || "?"} at ${fmtTime(incoming[0].timestamp)}`));
        if (isText(bytes)) raw.append(h("pre", { class: "mono text" }, printable(bytes)));
        raw.append(h("pre", { class: "mono hex" }, hexOf(bytes)));
      } catch (err) {
        clear(raw).append(notice(`Cannot load the packet: ${err.message}`, "error"));
      }
    }

    await first();
    return { destroy() { picker.dispose(); }, get rows() { return rows; } };
  },
};

