// dgm web UI: zoom, pan and search in the lineage tree; a run's dashboard kept live by
// server-sent events. Text from the archive goes in as textContent, never as markup; the
// charts are the server's own SVG.
"use strict";

(function lineage() {
  const view = document.getElementById("tree-view");
  const svg = document.getElementById("lineage");
  if (!view || !svg) return;
  const initial = svg.viewBox.baseVal;  // live: copied before it is changed
  const full = { width: initial.width, height: initial.height };
  const box = { x: 0, y: 0, w: full.width, h: full.height };
  const apply = () => svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.w} ${box.h}`);
  const fit = () => {  // the whole tree, however small that makes it
    const scale = Math.max(full.width / view.clientWidth, full.height / view.clientHeight, 1);
    box.w = view.clientWidth * scale; box.h = view.clientHeight * scale;
    box.x = 0; box.y = 0; apply();
  };
  const start = () => {  // one unit a pixel, the root in view
    const root = svg.querySelector("a.node circle");
    box.w = view.clientWidth; box.h = view.clientHeight; box.x = 0;
    box.y = root ? Math.max(0, root.cy.baseVal.value - box.h / 2) : 0; apply();
  };
  start();
  document.getElementById("fit")?.addEventListener("click", fit);
  view.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = view.getBoundingClientRect();
    const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    const k = e.deltaY > 0 ? 1.15 : 1 / 1.15;
    const w = box.w * k, h = box.h * k;
    box.x += (box.w - w) * fx; box.y += (box.h - h) * fy; box.w = w; box.h = h; apply();
  }, { passive: false });
  let drag = null, moved = false;
  view.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY }; moved = false; });
  window.addEventListener("pointerup", () => { drag = null; });
  view.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const r = view.getBoundingClientRect();
    const dx = (e.clientX - drag.x) * box.w / r.width, dy = (e.clientY - drag.y) * box.h / r.height;
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) moved = true;
    box.x -= dx; box.y -= dy; drag = { x: e.clientX, y: e.clientY }; apply();
  });
  // a drag that ends on a node is a pan, not a click
  svg.addEventListener("click", (e) => { if (moved) { e.preventDefault(); moved = false; } }, true);
  const find = document.getElementById("find"), result = document.getElementById("find-result");
  find?.addEventListener("input", () => {
    svg.querySelectorAll("a.found").forEach((a) => a.classList.remove("found"));
    const prefix = find.value.trim().toLowerCase();
    if (!prefix) { result.textContent = ""; return; }
    const hits = svg.querySelectorAll(`a[data-id^="${CSS.escape(prefix)}"]`);
    hits.forEach((a) => a.classList.add("found"));
    result.textContent = hits.length ? `${hits.length} found` : "none";
    if (hits.length) {
      const c = hits[0].querySelector("circle");
      box.x = c.cx.baseVal.value - box.w / 2; box.y = c.cy.baseVal.value - box.h / 2; apply();
    }
  });
})();

(function dashboard() {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td; };
  const rows = (tbody, items, cells) => {
    tbody.replaceChildren(...items.map((item) => {
      const tr = document.createElement("tr"); tr.append(...cells(item).map(cell)); return tr;
    }));
  };
  const source = new EventSource(`/runs/${encodeURIComponent(live.dataset.run)}/stream`);
  source.onmessage = (message) => {
    const state = JSON.parse(message.data);
    document.getElementById("node-count").textContent = state.nodes;
    rows(document.getElementById("in-flight"), state.in_flight, (u) => [u.unit, u.machine || "", u.seconds]);
    rows(document.getElementById("events"), state.events,
      (e) => [e.at.slice(11, 19), e.kind, (e.node || "-").slice(0, 8), e.what]);
    document.getElementById("latest-nodes").replaceChildren(...state.latest_nodes.map((n) => {
      const li = document.createElement("li"), a = document.createElement("a");
      a.href = `/nodes/${encodeURIComponent(n.id)}`; a.textContent = n.id.slice(0, 8);
      const st = document.createElement("span"); st.className = `st ${n.status}`; st.textContent = n.status;
      li.append(a, " ", st, " ", n.summary); return li;
    }));
    for (const [name, chart] of Object.entries(state.charts)) {
      const box = live.querySelector(`[data-chart="${name}"]`);
      if (box) box.innerHTML = chart;  // the server's SVG: its text is escaped there
    }
  };
})();
