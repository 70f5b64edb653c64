// Small DOM helpers: element building (text only, never HTML strings from data), formatting,
// dialogs and notices. Every view builds its DOM with h().

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function clear(el) {
  el.replaceChildren();
  return el;
}

// --- formatting ----------------------------------------------------------------------------------

export function fmtTime(ts) {
  if (ts === undefined || ts === null || !isFinite(ts)) return "–";
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(ts) {
  const d = new Date((ts || Date.now() / 1000) * 1000);
  return d.toTimeString().slice(0, 8);
}

export function ago(ts) {
  if (!ts) return "never";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

export function fmtDuration(seconds) {
  if (!isFinite(seconds)) return "–";
  seconds = Math.round(seconds);
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}

// Numbers rounded for display: coordinates keep 6 decimals, the rest at most 2.
export function fmtValue(value, name = "") {
  if (value === undefined || value === null) return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const places = /latitude|longitude/.test(name) ? 6 : Math.abs(value) >= 10 ? 1 : 2;
    return String(Number(value.toFixed(places)));
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function withUnit(value, name, unit) {
  const text = fmtValue(value, name);
  if (!unit || text === "–" || typeof value !== "number" || /latitude|longitude|timestamp/.test(name)) return text;
  const short = { percentage: "%", degrees: "°", meters: "m", volts: "V", seconds: "s", celsius: "°C", litres: "L" }[unit] || unit;
  return `${text} ${short}`;
}

// datetime-local value <-> UNIX seconds (local time)
export function toLocalInput(ts) {
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fromLocalInput(text) {
  const ms = new Date(text).getTime();
  return isFinite(ms) ? ms / 1000 : null;
}

export function printable(bytes) {
  let out = "";
  for (const b of bytes) out += b >= 32 && b < 127 ? String.fromCharCode(b) : b === 10 ? "⏎" : ".";
  return out;
}

export function isText(bytes) {
  if (!bytes.length) return false;
  let good = 0;
  for (const b of bytes) if ((b >= 32 && b < 127) || b === 10 || b === 13) good++;
  return good / bytes.length >= 0.95;
}

export function hexOf(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

export function bytesFromHex(hex) {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesFromBase64(text) {
  const bin = atob(text || "");
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// --- notices and dialogs -------------------------------------------------------------------------

export function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

let toastBox = null;
export function toast(text, kind = "info", ms = 4000) {
  if (!toastBox) {
    toastBox = h("div", { class: "toasts", "aria-live": "polite" });
    document.body.append(toastBox);
  }
  const el = h("div", { class: `toast ${kind}` }, text);
  toastBox.append(el);
  setTimeout(() => el.remove(), ms);
}

// A modal dialog; resolves with the value of the button pressed (or null on Escape / cancel).
// `build(dialog, close)` may add content; buttons: [{label, value, kind, disabled}].
export function dialog({ title, body = [], buttons = [{ label: "OK", value: true }], build, className = "" }) {
  return new Promise((resolve) => {
    const footer = h("div", { class: "dialog-buttons" });
    const dlg = h("dialog", { class: `sg-dialog ${className}`, "aria-labelledby": "dlg-title" },
      h("h2", { id: "dlg-title" }, title), h("div", { class: "dialog-body" }, body), footer);
    let done = false;
    const close = (value) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    for (const b of buttons) {
      footer.append(h("button", {
        type: "button", class: b.kind || "", disabled: !!b.disabled, dataset: { value: String(b.value) },
        onclick: () => close(b.value),
      }, b.label));
    }
    footer.append(h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Cancel"));
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); close(null); });
    document.body.append(dlg);
    if (build) build(dlg, close);
    dlg.showModal();
    const first = dlg.querySelector("input, select, textarea, button:not([disabled])");
    if (first) first.focus();
  });
}

// A dialog with a form; resolves with the form's values (FormData as an object) or null.
export function formDialog({ title, fields, submit = "Save", intro }) {
  return new Promise((resolve) => {
    const form = h("form", { class: "stack", method: "dialog" }, intro ? h("p", {}, intro) : null, fields);
    const dlg = h("dialog", { class: "sg-dialog", "aria-labelledby": "fdlg-title" },
      h("h2", { id: "fdlg-title" }, title), form);
    const close = (value) => { dlg.close(); dlg.remove(); resolve(value); };
    form.append(h("div", { class: "dialog-buttons" },
      h("button", { type: "submit" }, submit),
      h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Cancel")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      close(Object.fromEntries(new FormData(form).entries()));
    });
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); close(null); });
    document.body.append(dlg);
    dlg.showModal();
    const first = form.querySelector("input, select, textarea");
    if (first) first.focus();
  });
}

export function field(label, input, help) {
  return h("label", { class: "field" }, h("span", { class: "label" }, label), input,
    help ? h("small", { class: "help" }, help) : null);
}

export function debounce(fn, ms = 250) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// At most one call per `ms`, the last one always made (live updates must not starve it, as a
// debounce would under a steady stream).
export function throttle(fn, ms = 500) {
  let timer = null, last = 0;
  return (...args) => {
    const wait = last + ms - Date.now();
    clearTimeout(timer);
    if (wait <= 0) {
      last = Date.now();
      fn(...args);
    } else {
      timer = setTimeout(() => { last = Date.now(); fn(...args); }, wait);
    }
  };
}

export function stateDot(state) {
  return h("span", { class: `dot state-${state}`, title: state, "aria-label": state });
}
