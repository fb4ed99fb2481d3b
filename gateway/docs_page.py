"""``/docs``: a self-contained page that renders the OpenAPI document.

The document is embedded in the page and rendered by the page's own script, so
the page needs nothing from any other server: it works offline and behind
firewalls, and shows the same document ``/openapi.json`` serves.
"""

from __future__ import annotations

import json
from typing import Any

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1d232a; }
header { background: #1d3557; color: #fff; padding: 1rem 2rem; }
header h1 { margin: 0; font-size: 1.5rem; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 2rem 4rem; }
nav a { margin-right: 1rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; background: #f2f4f7; }
code { padding: 0 .2rem; }
.operation { border: 1px solid #d0d7de; border-radius: 6px; margin: 1rem 0; }
.operation > summary { padding: .5rem 1rem; cursor: pointer; font-weight: 600; }
.operation .body { padding: 0 1rem 1rem; }
.method { display: inline-block; min-width: 4rem; text-transform: uppercase;
          color: #fff; border-radius: 4px; text-align: center; margin-right: .5rem; }
.method.get { background: #2a7ab0; } .method.post { background: #2d8a4e; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
.schema { margin: .25rem 0 .25rem 1rem; }
.schema .name { font-weight: 600; }
.schema .req { color: #b42318; font-size: .8em; margin-left: .3rem; }
.schema .meta { color: #57606a; }
.status { font-weight: 600; }
"""

SCRIPT = r"""
(function () {
  const spec = JSON.parse(document.getElementById("spec").textContent);
  const main = document.getElementById("content");
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : String(c));
    return node;
  };
  const inline = (text) => {
    const span = el("span");
    const parts = String(text || "").split(/(`[^`]*`|\*\*[^*]*\*\*|\*[^*]*\*)/);
    for (const part of parts) {
      if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
        span.append(el("code", {}, part.slice(1, -1)));
      } else if (part.startsWith("**") && part.endsWith("**") && part.length > 3) {
        span.append(el("strong", {}, part.slice(2, -2)));
      } else if (part.startsWith("*") && part.endsWith("*") && part.length > 1) {
        span.append(el("em", {}, part.slice(1, -1)));
      } else {
        span.append(part);
      }
    }
    return span;
  };
  const markdown = (text) => {
    const box = el("div");
    for (const block of String(text || "").split(/\n\s*\n/)) {
      const lines = block.split("\n");
      if (lines.every((l) => /^\s*\*\s|^\s{2,}\S/.test(l) || !l.trim())) {
        const list = el("ul");
        let item = null;
        for (const line of lines) {
          if (/^\s*\*\s/.test(line)) {
            item = el("li", {}, inline(line.replace(/^\s*\*\s/, "")));
            list.append(item);
          } else if (item) {
            item.append(" ", inline(line.trim()));
          }
        }
        box.append(list);
      } else {
        box.append(el("p", {}, inline(lines.join(" "))));
      }
    }
    return box;
  };
  const refName = (ref) => ref.split("/").pop();
  const resolve = (schema) =>
    schema && schema.$ref ? spec.components.schemas[refName(schema.$ref)] : schema;

  function describe(schema) {
    const bits = [];
    if (!schema) return "";
    if (schema.$ref) return refName(schema.$ref);
    if (schema.type) bits.push([].concat(schema.type).join(" | "));
    if (schema.const !== undefined) bits.push("= " + JSON.stringify(schema.const));
    if (schema.enum) {
      bits.push("one of " + schema.enum.map((v) => JSON.stringify(v)).join(", "));
    }
    if (schema.minimum !== undefined) bits.push("≥ " + schema.minimum);
    if (schema.maximum !== undefined) bits.push("≤ " + schema.maximum);
    if (schema.minItems !== undefined) bits.push("items ≥ " + schema.minItems);
    if (schema.maxItems !== undefined) bits.push("items ≤ " + schema.maxItems);
    if (schema.pattern) bits.push("pattern " + schema.pattern);
    if (schema.default !== undefined) {
      bits.push("default " + JSON.stringify(schema.default));
    }
    return bits.join(", ");
  }

  function renderSchema(schema, depth, seen) {
    const box = el("div", { class: "schema" });
    if (!schema) return box;
    if (schema.$ref) {
      const name = refName(schema.$ref);
      const link = el("a", { href: "#schema-" + name }, name);
      if (seen.includes(name) || depth > 6) {
        box.append(link);
        return box;
      }
      const more = el("details", {}, el("summary", {}, link));
      more.append(renderSchema(resolve(schema), depth + 1, seen.concat([name])));
      box.append(more);
      return box;
    }
    const meta = describe(schema);
    if (meta) box.append(el("span", { class: "meta" }, meta));
    if (schema.description) box.append(" — ", inline(schema.description));
    for (const word of ["oneOf", "anyOf"]) {
      if (!schema[word]) continue;
      const list = el("ul");
      box.append(el("div", {}, word === "oneOf" ? "exactly one of:" : "any of:"), list);
      for (const option of schema[word]) {
        const title = option.title ? el("span", { class: "name" }, option.title) : "";
        list.append(el("li", {}, title, renderSchema(option, depth + 1, seen)));
      }
    }
    if (schema.properties) {
      const list = el("ul");
      for (const [name, sub] of Object.entries(schema.properties)) {
        const item = el("li", {}, el("span", { class: "name" }, name));
        if ((schema.required || []).includes(name)) {
          item.append(el("span", { class: "req" }, "required"));
        }
        item.append(renderSchema(sub, depth + 1, seen));
        list.append(item);
      }
      box.append(list);
    }
    if (schema.items) {
      box.append(el("div", {}, "items:"), renderSchema(schema.items, depth + 1, seen));
    }
    return box;
  }

  function renderOperation(path, method, op) {
    const summary = el("summary", {},
      el("span", { class: "method " + method }, method), el("code", {}, path),
      " ", op.summary || "");
    const body = el("div", { class: "body" });
    const secured = (op.security || []).length > 0;
    body.append(el("p", {}, secured ? "Needs a bearer API key." : "No key needed."));
    if ((op.parameters || []).length) {
      const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"),
        el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "description")));
      for (const p of op.parameters) {
        table.append(el("tr", {}, el("td", {}, el("code", {}, p.name)),
          el("td", {}, p.in), el("td", {}, describe(p.schema)),
          el("td", {}, inline(p.description || ""))));
      }
      body.append(el("h4", {}, "Parameters"), table);
    }
    if (op.requestBody) {
      body.append(el("h4", {}, "Request body"));
      for (const [type, media] of Object.entries(op.requestBody.content)) {
        body.append(el("div", {}, el("code", {}, type)),
          renderSchema(media.schema, 0, []));
      }
    }
    const responses = el("table", { class: "responses" },
      el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning"),
        el("th", {}, "body")));
    for (const [status, response] of Object.entries(op.responses || {})) {
      const content = Object.entries(response.content || {}).map(
        ([type, media]) => type + (media.schema ? " " + describe(media.schema) : ""));
      responses.append(el("tr", { "data-status": status },
        el("td", { class: "status" }, status),
        el("td", {}, inline(response.description)),
        el("td", {}, content.join("; "))));
    }
    body.append(el("h4", {}, "Responses"), responses);
    const anchor = "op-" + method + "-" + path.replace(/[^a-z0-9]+/gi, "-");
    const attrs = { class: "operation", "data-path": path, "data-method": method,
                    id: anchor };
    return el("details", attrs, summary, body);
  }

  document.title = spec.info.title + " " + spec.info.version;
  document.getElementById("title").textContent = spec.info.title;
  document.getElementById("version").textContent = "API version " + spec.info.version +
    " · OpenAPI " + spec.openapi;
  main.append(markdown(spec.info.description));
  main.append(el("h2", { id: "routes" }, "Routes"));
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      main.append(renderOperation(path, method, op));
    }
  }
  main.append(el("h2", { id: "schemas" }, "Schemas"));
  for (const [name, schema] of Object.entries(spec.components.schemas)) {
    const section = el("details", { class: "operation", id: "schema-" + name,
                                    "data-schema": name },
      el("summary", {}, name), el("div", { class: "body" },
        renderSchema(schema, 0, [name])));
    main.append(section);
  }
  // Open the section a link points at, or else the first route.
  const target = location.hash && document.getElementById(location.hash.slice(1));
  (target || main.querySelector("details.operation")).setAttribute("open", "");
  if (target) target.scrollIntoView();
  document.body.setAttribute("data-rendered", "true");
})();
"""


def render(spec: dict[str, Any]) -> str:
    """The page with ``spec`` embedded; ``</`` is escaped so it cannot end a tag."""
    embedded = json.dumps(spec).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatekeeper gateway API</title>
<style>{_STYLE}</style>
</head>
<body>
<header><h1 id="title">Gatekeeper gateway</h1><div id="version"></div></header>
<main>
<nav><a href="#routes">Routes</a><a href="#schemas">Schemas</a>
<a href="/openapi.json">openapi.json</a></nav>
<div id="content"></div>
</main>
<script type="application/json" id="spec">{embedded}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
