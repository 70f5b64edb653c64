// A Leaflet map with the server's tile layer (`map_tiles_url`, OpenStreetMap by default, with its
// attribution). Without tiles, or when none can be loaded (no internet on the LAN), the map keeps
// working on a blank background and says so.

import { session } from "./api.js";
import { h } from "./dom.js";

const L = window.L;
const BLANK = "data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

export function createMap(element, { center = [20, 0], zoom = 2 } = {}) {
  const map = L.map(element, { center, zoom, worldCopyJump: true, keyboard: true, zoomControl: true });
  map.attributionControl.setPrefix(false);
  const conf = (session.config && session.config.map) || {};
  const note = h("div", { class: "map-note", hidden: true, role: "status" });
  element.append(note);
  if (conf.tiles_url) {
    let loaded = 0, failed = 0;
    const layer = L.tileLayer(conf.tiles_url, {
      attribution: conf.attribution || "", maxZoom: 19, errorTileUrl: BLANK, crossOrigin: false,
    });
    layer.on("tileload", (e) => {
      if (e.tile && e.tile.src === BLANK) return; // the stand-in of a tile that failed
      loaded++;
      note.hidden = true;
    });
    layer.on("tileerror", () => {
      failed++;
      if (!loaded && failed >= 2) {
        note.hidden = false;
        note.textContent = "Map tiles unreachable: markers and tracks on a blank background.";
      }
    });
    layer.addTo(map);
  } else {
    note.hidden = false;
    note.textContent = "No map tiles configured (map_tiles_url): blank background.";
  }
  L.control.scale({ imperial: false }).addTo(map);
  // The container may get its size after layout (flex/grid): tell Leaflet.
  const observer = new ResizeObserver(() => map.invalidateSize());
  observer.observe(element);
  map.on("unload", () => observer.disconnect());
  return map;
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// A heading arrow coloured by state, with the device's name beside it.
export function arrowIcon(state, heading, label, id) {
  const html = `<div class="sg-marker state-${state}" data-device="${Number(id)}">` +
    `<svg viewBox="0 0 24 24" aria-hidden="true" style="transform: rotate(${Math.round(Number(heading) || 0)}deg)">` +
    `<path d="M12 2 L20 21 L12 16.5 L4 21 Z"/></svg>` +
    (label ? `<span class="sg-label">${escapeHtml(label)}</span>` : "") + "</div>";
  return L.divIcon({ html, className: "sg-marker-wrap", iconSize: [28, 28], iconAnchor: [14, 14], popupAnchor: [0, -12], tooltipAnchor: [12, 0] });
}

export function dotIcon(cls, text) {
  return L.divIcon({ html: `<div class="sg-dot ${escapeHtml(cls)}">${text ? escapeHtml(text) : ""}</div>`,
    className: "sg-dot-wrap", iconSize: [18, 18], iconAnchor: [9, 9] });
}

export function speedColor(speed) {
  if (!(speed > 0)) return "#7b8794";
  if (speed < 30) return "#1a9c4a";
  if (speed < 60) return "#8bbf1f";
  if (speed < 90) return "#f29d0b";
  if (speed < 120) return "#e8590c";
  return "#c92a2a";
}

export const SPEED_LEGEND = [["< 30", "#1a9c4a"], ["30–60", "#8bbf1f"], ["60–90", "#f29d0b"], ["90–120", "#e8590c"], ["≥ 120", "#c92a2a"], ["0", "#7b8794"]];

export function distanceKm(a, b) {
  const R = 6371.0088, rad = Math.PI / 180;
  const dLat = (b[0] - a[0]) * rad, dLon = (b[1] - a[1]) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(s)));
}

// Removes a map even in the middle of a zoom animation: Leaflet 1.9 finishes a zoom animation
// from a timer that would otherwise run on the removed map and throw.
export function removeMap(map) {
  map._animatingZoom = false;
  map.stop();
  map.remove();
}
