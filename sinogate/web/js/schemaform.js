// A form built from a JSON schema (an object's properties): text, number, checkbox, select,
// arrays and objects as JSON. `schemaForm(schema, values)` returns {element, read(), set(values)};
// read() returns {value, errors}.

import { h } from "./dom.js";

function kindOf(spec) {
  let t = spec.type;
  if (Array.isArray(t)) t = t.find((x) => x !== "null") || t[0];
  if (!t && spec.enum) t = typeof spec.enum[0] === "number" ? "number" : "string";
  if (!t && spec.properties) t = "object";
  return t || "string";
}

export function schemaForm(schema, values = {}, { idPrefix = "f", readOnly = false } = {}) {
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const inputs = new Map();
  const element = h("div", { class: "schema-form" });
  const names = Object.keys(props);
  if (!names.length) element.append(h("p", { class: "muted" }, "No properties."));
  for (const name of names) {
    const spec = props[name] || {};
    const kind = kindOf(spec);
    const id = `${idPrefix}-${name.replace(/[^\w-]/g, "_")}`;
    let input;
    if (spec.enum) {
      input = h("select", { id, name });
      if (!required.has(name)) input.append(new Option("—", ""));
      for (const option of spec.enum) input.append(new Option(String(option), JSON.stringify(option)));
    } else if (kind === "boolean") {
      input = h("input", { id, name, type: "checkbox" });
    } else if (kind === "integer" || kind === "number") {
      input = h("input", { id, name, type: "number", step: kind === "integer" ? "1" : "any",
        min: spec.minimum ?? null, max: spec.maximum ?? null, placeholder: spec.default !== undefined ? `default ${spec.default}` : "" });
    } else if (kind === "array" || kind === "object") {
      input = h("textarea", { id, name, rows: 2, class: "mono", placeholder: kind === "array" ? '["a", "b"]' : '{"key": "value"}' });
    } else {
      input = h("input", { id, name, type: "text", minlength: spec.minLength ?? null, maxlength: spec.maxLength ?? null,
        placeholder: spec.default !== undefined ? `default ${spec.default}` : (spec.examples ? String(spec.examples[0]) : "") });
    }
    if (readOnly) input.disabled = true;
    input.dataset.kind = kind;
    inputs.set(name, { input, spec, kind });
    const label = (spec.title || name) + (required.has(name) ? " *" : "");
    element.append(h("div", { class: "field" + (kind === "boolean" ? " check" : "") },
      h("label", { for: id, class: "label" }, label),
      input,
      spec.description ? h("small", { class: "help" }, spec.description) : null));
  }

  function set(vals) {
    for (const [name, { input, kind, spec }] of inputs) {
      const v = vals ? vals[name] : undefined;
      if (spec.enum) input.value = v === undefined || v === null ? "" : JSON.stringify(v);
      else if (kind === "boolean") input.checked = v === undefined ? !!spec.default : !!v;
      else if (kind === "array" || kind === "object") input.value = v === undefined ? "" : JSON.stringify(v);
      else input.value = v === undefined || v === null ? "" : String(v);
    }
  }

  function read() {
    const value = {}, errors = [];
    for (const [name, { input, kind, spec }] of inputs) {
      const title = spec.title || name;
      if (kind === "boolean") {
        // A checkbox always has a value; leave an untouched default out.
        if (input.checked !== !!spec.default || (values && name in values)) value[name] = input.checked;
        continue;
      }
      const text = input.value.trim();
      if (text === "") {
        if (required.has(name)) errors.push(`${title} is required`);
        continue;
      }
      if (spec.enum) { value[name] = JSON.parse(text); continue; }
      if (kind === "integer" || kind === "number") {
        const n = Number(text);
        if (!isFinite(n) || (kind === "integer" && !Number.isInteger(n))) errors.push(`${title} must be ${kind === "integer" ? "an integer" : "a number"}`);
        else if (spec.minimum !== undefined && n < spec.minimum) errors.push(`${title} must be ≥ ${spec.minimum}`);
        else if (spec.maximum !== undefined && n > spec.maximum) errors.push(`${title} must be ≤ ${spec.maximum}`);
        else value[name] = n;
      } else if (kind === "array" || kind === "object") {
        try {
          value[name] = JSON.parse(text);
        } catch {
          if (kind === "array") value[name] = text.split(",").map((s) => s.trim()).filter(Boolean);
          else errors.push(`${title} must be JSON`);
        }
      } else {
        value[name] = text;
      }
    }
    return { value, errors };
  }

  set(values);
  return { element, read, set, inputs };
}
