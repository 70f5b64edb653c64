// Geofences: draw and edit circles, polygons and corridors on the map (leaflet-geoman); name,
// speed limit and devices; stored through /gw/geofences when the server has that API.

import { api, routes, session } from "../api.js";
import { clear, dialog, field, formDialog, h, notice, toast } from "../dom.js";
import { fleet, position } from "../live.js";
import { createMap, removeMap } from "../mapbase.js";

const L = window.L;

export function toGeometry(layer, width) {
  if (layer instanceof L.Circle) {
    const c = layer.getLatLng();
    return { type: "circle", center: { lat: c.lat, lon: c.lng }, radius: layer.getRadius() / 1000 };
  }
  if (layer instanceof L.Polygon) { // rectangles too
    const ring = layer.getLatLngs()[0];
    return { type: "polygon", path: ring.map((p) => ({ lat: p.lat, lon: p.lng })) };
  }
  if (layer instanceof L.Polyline) {
    return { type: "corridor", path: layer.getLatLngs().map((p) => ({ lat: p.lat, lon: p.lng })), width: Number(width) || 0.05 };
  }
  return null;
}

function toLayer(g) {
  const geometry = g.geometry || {};
  const style = { color: "#7048e8", weight: 2, fillOpacity: 0.12 };
  if (geometry.type === "circle" && geometry.center) {
    return L.circle([geometry.center.lat, geometry.center.lon], { ...style, radius: (geometry.radius || 0) * 1000 });
  }
  const path = (geometry.path || []).map((p) => [p.lat, p.lon]);
  if (geometry.type === "polygon") return L.polygon(path, style);
  if (geometry.type === "corridor") return L.polyline(path, { ...style, weight: 6, dashArray: "8 6" });
  return null;
}

export default {
  id: "geofences",
  title: "Geofences",
  perDevice: false,
  async mount(root) {
    const available = routes.geofences();
    const canWrite = available && !session.readOnly && !session.limited;
    const list = h("ul", { class: "geofence-list", id: "geofence-list" });
    const mapEl = h("div", { class: "map", id: "geofence-map", role: "region", "aria-label": "Geofence map" });
    const side = h("aside", { class: "panel side" }, h("h2", {}, "Geofences"));
    root.append(h("div", { class: "split" }, side, mapEl));
    const map = createMap(mapEl);
    const shapes = L.featureGroup().addTo(map);
    const devices = L.layerGroup().addTo(map);
    for (const entry of fleet.list()) {
      const pos = position(entry);
      if (pos) L.circleMarker(pos, { radius: 4, color: "#1d2733", weight: 1, fillOpacity: 0.8, interactive: false }).addTo(devices);
    }
    const byId = new Map(); // geofence id -> layer
    let fences = [];

    if (!available) {
      side.append(notice("Geofences are not available on this server yet: the geofence API (analytics) is not there. The map shows the devices.", "muted"));
    } else if (!canWrite) {
      side.append(h("p", { class: "muted" }, "This token may read geofences, not change them."), list);
    } else {
      side.append(h("p", { class: "muted" }, "Draw a circle, a polygon (or rectangle) or a corridor (a line with a width) with the tools on the map; edit with the edit tool, then it is saved."), list);
      map.pm.addControls({
        position: "topleft", drawMarker: false, drawCircleMarker: false, drawText: false, cutPolygon: false,
        rotateMode: false, drawPolyline: true, drawRectangle: true, drawPolygon: true, drawCircle: true,
        editMode: true, dragMode: true, removalMode: false,
      });
      map.on("pm:create", async (e) => {
        const layer = e.layer;
        const corridor = e.shape === "Line";
        const values = await formDialog({
          title: "New geofence", submit: "Save",
          fields: [
            field("Name", h("input", { name: "name", required: true, id: "geofence-name" })),
            field("Speed limit (km/h, optional)", h("input", { name: "speed_limit", type: "number", min: 0, step: "any" })),
            field("Devices (selector, empty: all)", h("input", { name: "devices", placeholder: "all, 1,2,3 or configuration.ident=7340*" })),
            corridor ? field("Corridor width (km)", h("input", { name: "width", type: "number", min: 0.001, step: "any", value: "0.05", required: true })) : null,
          ],
        });
        layer.remove();
        if (!values) return;
        const body = { name: values.name.trim(), geometry: toGeometry(layer, values.width) };
        if (values.speed_limit) body.speed_limit = Number(values.speed_limit);
        if (values.devices && values.devices.trim()) body.devices = values.devices.trim();
        try {
          await api("POST", "/gw/geofences", [body]);
          toast(`Geofence ${body.name} saved`, "ok");
        } catch (err) {
          toast(`Not saved: ${err.message}`, "error", 8000);
        }
        load();
      });
    }

    async function save(g, layer) {
      const geometry = toGeometry(layer, g.geometry && g.geometry.width);
      try {
        await api("PUT", `/gw/geofences/${g.id}`, { geometry });
        toast(`Geofence ${g.name} updated`, "ok");
      } catch (err) {
        toast(`Not saved: ${err.message}`, "error", 8000);
        load();
      }
    }

    async function remove(g) {
      const ok = await dialog({ title: `Delete geofence ${g.name}?`, buttons: [{ label: "Delete", value: true, kind: "danger" }] });
      if (!ok) return;
      try {
        await api("DELETE", `/gw/geofences/${g.id}`);
      } catch (err) {
        toast(err.message, "error");
      }
      load();
    }

    async function edit(g) {
      const values = await formDialog({
        title: `Geofence ${g.name}`, submit: "Save",
        fields: [
          field("Name", h("input", { name: "name", required: true, value: g.name || "" })),
          field("Speed limit (km/h, empty: none)", h("input", { name: "speed_limit", type: "number", min: 0, step: "any", value: g.speed_limit ?? "" })),
          field("Devices (selector, empty: all)", h("input", { name: "devices", value: g.devices || "" })),
        ],
      });
      if (!values) return;
      const body = { name: values.name.trim(), speed_limit: values.speed_limit ? Number(values.speed_limit) : null, devices: values.devices.trim() || null };
      try {
        await api("PUT", `/gw/geofences/${g.id}`, body);
      } catch (err) {
        toast(err.message, "error");
      }
      load();
    }

    async function load() {
      if (!available) return;
      try {
        fences = await api("GET", "/gw/geofences");
      } catch (err) {
        clear(list).append(h("li", {}, notice(err.message, "error")));
        return;
      }
      shapes.clearLayers();
      byId.clear();
      clear(list);
      for (const g of fences) {
        const layer = toLayer(g);
        if (layer) {
          layer.bindTooltip(g.name || `#${g.id}`);
          layer.addTo(shapes);
          byId.set(g.id, layer);
          if (canWrite) layer.on("pm:update", () => save(g, layer));
        }
        const kind = (g.geometry && g.geometry.type) || "?";
        list.append(h("li", { dataset: { id: g.id } },
          h("button", { type: "button", class: "link", onclick: () => layer && map.fitBounds(layer.getBounds(), { maxZoom: 16 }) }, g.name || `#${g.id}`),
          h("small", { class: "muted" }, ` ${kind}${g.speed_limit ? ` · ≤ ${g.speed_limit} km/h` : ""}${g.devices ? ` · ${g.devices}` : ""}`),
          canWrite ? h("span", { class: "actions" },
            h("button", { type: "button", class: "small secondary", onclick: () => edit(g) }, "Edit"),
            h("button", { type: "button", class: "small danger", onclick: () => remove(g) }, "Delete")) : null));
      }
      if (!fences.length) list.append(h("li", { class: "empty" }, "No geofences yet."));
      const bounds = shapes.getBounds();
      if (bounds.isValid()) map.fitBounds(bounds, { padding: [20, 20], maxZoom: 15, animate: false });
    }

    if (available) await load();
    if (!shapes.getLayers().length) {
      const pts = fleet.list().map(position).filter(Boolean);
      if (pts.length) map.fitBounds(L.latLngBounds(pts), { padding: [30, 30], maxZoom: 14, animate: false });
    }
    return { map, get fences() { return fences; }, destroy() { removeMap(map); } };
  },
};
