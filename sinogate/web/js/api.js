// The REST API client: the token (session storage), JSON calls in flespi's envelope, the live
// stream (EventSource with ?token=) and which optional routes this server has (from /openapi.json,
// so the page never probes a route with a request that would fail).

const KEY = "sinogate.token";

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
  }
}

export const session = {
  token: sessionStorage.getItem(KEY) || "",
  config: null, // GET /web/config: {token: {master, read_only, devices}, map, settings_schema, ...}
  paths: [],
  get readOnly() { return !!(this.config && this.config.token.read_only); },
  get limited() { return !!(this.config && this.config.token.devices); },
  get master() { return !!(this.config && this.config.token.master); },
};

export function setToken(token) {
  session.token = token;
  if (token) sessionStorage.setItem(KEY, token);
  else sessionStorage.removeItem(KEY);
}

export function data(obj) {
  return "data=" + encodeURIComponent(JSON.stringify(obj));
}

async function request(method, path, body) {
  const headers = { Authorization: "FlespiToken " + session.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response;
}

// The `result` array of a call; throws ApiError with the server's reason otherwise.
export async function api(method, path, body) {
  const response = await request(method, path, body);
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok || (payload && payload.errors && !(payload.result || []).length)) {
    const reasons = ((payload && payload.errors) || []).map((e) => e.reason).filter(Boolean);
    const reason = reasons.join("; ") || (payload && payload.detail && JSON.stringify(payload.detail)) || response.statusText;
    throw new ApiError(response.status, reason);
  }
  return payload ? payload.result : [];
}

export const get = (path) => api("GET", path);

// A file download through fetch (the token goes in the header, never in a URL).
export async function download(path, fallbackName) {
  const response = await request("GET", path);
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  const disposition = response.headers.get("content-disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = match ? match[1] : fallbackName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob.size;
}

// Which routes exist: the OpenAPI document lists them (analytics routes may not be there yet).
export async function loadPaths() {
  try {
    const response = await fetch("/openapi.json");
    const doc = await response.json();
    session.paths = Object.keys(doc.paths || {});
  } catch {
    session.paths = [];
  }
}

export function hasRoute(pattern) {
  return session.paths.some((p) => pattern.test(p));
}

export const routes = {
  events: () => hasRoute(/^\/gw\/devices\/\{[^}]+\}\/events$/),
  geofences: () => hasRoute(/^\/gw\/geofences$/),
  calcs: () => hasRoute(/^\/gw\/calcs$/) && hasRoute(/^\/gw\/calcs\/\{[^}]+\}\/devices\/\{[^}]+\}\/intervals/),
  reports: () => hasRoute(/^\/gw\/devices\/\{[^}]+\}\/reports\//),
  support: () => hasRoute(/^\/gw\/devices\/\{[^}]+\}\/command-support$/),
};

// Live Server-Sent Events of devices; `on` maps event types to handlers. Returns the EventSource
// (close() it when done). `status(text)` is told about (re)connections.
export function stream(selector, types, on, status) {
  const url = `/gw/devices/${encodeURIComponent(selector)}/stream?types=${types.join(",")}&token=${encodeURIComponent(session.token)}`;
  const source = new EventSource(url);
  for (const type of [...types, "dropped"]) {
    source.addEventListener(type, (e) => {
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        return;
      }
      if (on[type]) on[type](event);
    });
  }
  if (status) {
    source.addEventListener("open", () => status("live"));
    source.addEventListener("error", () => status(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"));
  }
  return source;
}
