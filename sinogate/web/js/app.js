// The web app shell: sign-in (token in session storage or a #token= link), the header and its
// navigation, and a hash router that mounts one view at a time (#/map, #/history/3?from=…).

import { api, ApiError, loadPaths, session, setToken } from "./api.js";
import { clear, h, notice } from "./dom.js";
import { fleet } from "./live.js";
import mapView from "./views/map.js";
import devicesView from "./views/devices.js";
import historyView from "./views/history.js";
import messagesView from "./views/messages.js";
import telemetryView from "./views/telemetry.js";
import eventsView from "./views/events.js";
import geofencesView from "./views/geofences.js";
import consoleView from "./views/console.js";
import commandsView from "./views/commands.js";

const VIEWS = [mapView, devicesView, historyView, messagesView, telemetryView, eventsView, geofencesView,
  consoleView, commandsView];
const DEVICE_KEY = "sinogate.device";

const app = {
  current: null, // {view, instance}
  deviceId: Number(sessionStorage.getItem(DEVICE_KEY)) || null,
};
// For the browser tests and for curious users: the live state of the page.
window.sinogate = { app, fleet, session };

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const status = document.getElementById("status");

export function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart = ""] = hash.split("?");
  const [name, arg] = pathPart.split("/");
  const params = Object.fromEntries(new URLSearchParams(queryPart));
  return { name: name || "map", arg: arg || null, params };
}

export function link(name, deviceId, params) {
  let out = `#/${name}`;
  if (deviceId) out += `/${deviceId}`;
  if (params && Object.keys(params).length) out += "?" + new URLSearchParams(params).toString();
  return out;
}

export function go(name, deviceId, params) {
  location.hash = link(name, deviceId, params);
}

export function setDevice(id) {
  app.deviceId = id || null;
  if (id) sessionStorage.setItem(DEVICE_KEY, String(id));
  renderNav();
}

function renderNav() {
  const { name } = route();
  clear(nav);
  for (const view of VIEWS) {
    const href = link(view.id, view.perDevice ? app.deviceId : null);
    nav.append(h("a", { href, "aria-current": view.id === name ? "page" : null }, view.title));
  }
}

let generation = 0;

async function mount() {
  const mine = ++generation;
  const r = route();
  const view = VIEWS.find((v) => v.id === r.name) || mapView;
  if (app.current && app.current.instance && app.current.instance.destroy) app.current.instance.destroy();
  app.current = null;
  if (view.perDevice) {
    if (r.arg) setDevice(Number(r.arg));
    else if (app.deviceId && fleet.get(app.deviceId)) {
      history.replaceState(null, "", link(view.id, app.deviceId, r.params));
    }
  }
  renderNav();
  document.title = `${view.title} · sinogate`;
  clear(main);
  main.className = `view-${view.id}`;
  // each view gets its own box: one that finishes loading after the user moved on stays out of sight
  const box = h("div", { class: "view-root" });
  main.append(box);
  const remembered = app.deviceId && fleet.get(app.deviceId) ? app.deviceId : null;
  const deviceId = view.perDevice ? (r.arg ? Number(r.arg) : remembered) : null;
  try {
    const instance = await view.mount(box, { deviceId, params: r.params, app: { go, link, setDevice } });
    if (mine !== generation) {
      // the user moved on while this view was loading: it never becomes current
      if (instance && instance.destroy) instance.destroy();
      return;
    }
    app.current = { view, instance };
  } catch (err) {
    if (mine === generation) box.append(notice(`This view failed: ${err.message}`, "error"));
  }
}

// --- sign-in ----------------------------------------------------------------------------------------

function showLogin(message) {
  fleet.stop();
  document.body.classList.add("signed-out");
  clear(nav);
  clear(main);
  main.className = "view-login";
  const input = h("input", { type: "password", name: "token", id: "login-token", autocomplete: "current-password",
    placeholder: "API token", required: true, spellcheck: "false" });
  const error = h("p", { class: "notice error", role: "alert", hidden: !message }, message || "");
  const form = h("form", { class: "login card", id: "login" },
    h("h2", {}, "Sign in"),
    h("p", {}, "Paste an API token: the master token (printed at the first start, kept in data/token, or ",
      h("code", {}, "sinogate token master"), ") or a limited one (", h("code", {}, "sinogate token create"), ")."),
    h("label", { class: "field", for: "login-token" }, h("span", { class: "label" }, "API token"), input),
    error,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    const ok = await start();
    if (!ok) {
      error.hidden = false;
      error.textContent = "That token was not accepted (unknown or expired).";
    }
  });
  main.append(form);
  input.focus();
}

async function start() {
  if (!session.token) {
    showLogin();
    return false;
  }
  try {
    [session.config] = await api("GET", "/web/config");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      setToken("");
      showLogin("That token was not accepted (unknown or expired).");
      return false;
    }
    showLogin(`The server did not answer: ${err.message}`);
    return false;
  }
  document.body.classList.remove("signed-out");
  const t = session.config.token;
  const badge = document.getElementById("token-kind");
  badge.textContent = t.master ? "master token" : [t.read_only ? "read-only" : "read-write", t.devices ? `devices ${t.devices}` : "all devices"].join(" · ");
  await loadPaths();
  try {
    await fleet.start();
  } catch (err) {
    main.append(notice(`Could not load the devices: ${err.message}`, "error"));
  }
  if (!location.hash.startsWith("#/")) history.replaceState(null, "", link("map"));
  await mount();
  return true;
}

fleet.addEventListener("status", (e) => {
  status.textContent = e.detail === "live" ? "live" : e.detail;
  status.className = `stream-status ${e.detail}`;
});

document.getElementById("logout").addEventListener("click", () => {
  setToken("");
  session.config = null;
  history.replaceState(null, "", "/");
  showLogin();
});

window.addEventListener("hashchange", () => {
  if (session.config) mount();
});

// A link may carry the token (and a device, and a view): /#token=…&device=3&view=console.
// The hash never reaches the server; it is removed from the address bar at once.
const linkParams = new URLSearchParams(location.hash.replace(/^#/, ""));
if (linkParams.get("token")) {
  setToken(linkParams.get("token"));
  const device = Number(linkParams.get("device")) || null;
  const view = linkParams.get("view") || (device ? "telemetry" : "map");
  if (device) setDevice(device);
  history.replaceState(null, "", location.pathname + link(view, device));
}
start();
