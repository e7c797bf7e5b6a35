// The report's timeline (Jepsen's timeline.html, with zoom and pan): lanes of operations as bars from
// invocation to completion, fault windows as bands, evidence marks above the lanes. Plain DOM + SVG, no
// library; the data is the JSON that harness/report/timeline.py makes, embedded in the page.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const LANE_H = 16, AXIS_H = 22, MARK_H = 14, GUTTER = 96, BAND_LABEL_H = 14;

  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceStep(span, target) {
    const raw = span / Math.max(1, target);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function fmt(x, unit) {
    if (unit !== "ms") return String(Math.round(x));
    if (Math.abs(x) >= 1000) return (x / 1000).toFixed(x % 1000 === 0 ? 0 : 2) + " s";
    return (Math.round(x * 100) / 100) + " ms";
  }

  function Timeline(root, data, tooltip) {
    this.root = root;
    this.data = data;
    this.tooltip = tooltip;
    const pad = Math.max(1e-3, (data.x_max - data.x_min) * 0.01);
    this.full = [data.x_min - pad, data.x_max + pad];
    this.view = this.full.slice();
    this.build();
    this.layout();
    this.bind();
  }

  Timeline.prototype.build = function () {
    const d = this.data;
    this.marksH = d.marks.length ? d.marks.length * MARK_H + 4 : 0;
    this.top = AXIS_H + BAND_LABEL_H + this.marksH;
    this.height = this.top + d.lanes.length * LANE_H + 6;
    this.width = Math.max(400, this.root.clientWidth || 1000);
    const svg = this.svg = el("svg", {width: this.width, height: this.height, class: "timeline-svg"}, this.root);
    const clip = el("clipPath", {id: this.root.id + "-clip"}, el("defs", {}, svg));
    el("rect", {x: GUTTER, y: 0, width: this.width - GUTTER, height: this.height}, clip);
    const lanesG = el("g", {class: "lanes"}, svg);
    d.lanes.forEach((label, i) => {
      const y = this.top + i * LANE_H;
      if (i % 2) el("rect", {x: GUTTER, y: y, width: this.width - GUTTER, height: LANE_H, class: "lane-stripe"}, lanesG);
      const t = el("text", {x: GUTTER - 6, y: y + LANE_H - 4, class: "lane-label", "text-anchor": "end"}, lanesG);
      t.textContent = label;
    });
    const body = el("g", {"clip-path": "url(#" + this.root.id + "-clip)"}, svg);
    this.axisG = el("g", {class: "axis"}, svg);
    this.bands = d.faults.map((f) => {
      const r = el("rect", {y: AXIS_H, height: this.height - AXIS_H, class: "fault-band kind-" + f.kind + (f.failed ? " failed" : ""),
                            "data-kind": f.kind}, body);
      const t = el("text", {y: AXIS_H + 11, class: "band-label"}, body);
      t.textContent = f.kind;
      r.addEventListener("mousemove", (e) => this.tip(e, f.label + (f.failed ? "  (the nemesis reported: " + f.error + ")" : "") +
                                                    (f.open ? "  (still active when the history ends)" : "")));
      r.addEventListener("mouseleave", () => this.untip());
      return [r, t];
    });
    this.marks = d.marks.map((m, i) => {
      const y = AXIS_H + BAND_LABEL_H + i * MARK_H;
      const r = el("rect", {y: y + 2, height: MARK_H - 3, class: "mark role-" + m.role}, body);
      const t = el("text", {y: y + MARK_H - 3, class: "mark-label"}, body);
      t.textContent = m.label;
      return [r, t];
    });
    const opsG = this.opsG = el("g", {class: "ops"}, body);
    this.bars = d.ops.map((o, i) => {
      const cls = "op " + o[3] + (o[7] ? " role-" + o[7] : "") + (o[7] === "failing" ? " failing" : "") + (o[2] === null ? " open" : "");
      const r = el("rect", {y: this.top + o[0] * LANE_H + 2, height: LANE_H - 4, class: cls, "data-i": i, "data-index": o[5]}, opsG);
      return r;
    });
    this.labels = [];
    d.ops.forEach((o, i) => {
      if (!o[8]) return;
      const t = el("text", {y: this.top + o[0] * LANE_H + LANE_H - 5, class: "op-label"}, body);
      t.textContent = o[8];
      this.labels.push([t, i]);
    });
  };

  Timeline.prototype.x = function (v) {
    return GUTTER + (v - this.view[0]) / (this.view[1] - this.view[0]) * (this.width - GUTTER);
  };

  Timeline.prototype.layout = function () {
    const d = this.data, end = this.view[1];
    d.ops.forEach((o, i) => {
      const x0 = this.x(o[1]), x1 = this.x(o[2] === null ? Math.max(end, d.x_max) : o[2]);
      const r = this.bars[i];
      r.setAttribute("x", x0.toFixed(1));
      r.setAttribute("width", Math.max(1.5, x1 - x0).toFixed(1));
    });
    // Bar labels: where two would overlap in a lane, the later one is hidden (zoom in to see it).
    const lastEnd = {};
    this.labels.map(([t, i]) => [t, i, this.x(d.ops[i][1]) + 2]).sort((a, b) => a[2] - b[2]).forEach(([t, i, x]) => {
      const lane = d.ops[i][0];
      if (t.w === undefined) t.w = t.getComputedTextLength();
      t.setAttribute("x", x.toFixed(1));
      const hidden = x < (lastEnd[lane] || -Infinity) + 3 || x < GUTTER;
      t.style.display = hidden ? "none" : "";
      if (!hidden) lastEnd[lane] = x + t.w;
    });
    d.faults.forEach((f, i) => {
      const [r, t] = this.bands[i], x0 = this.x(f.start), x1 = this.x(f.end);
      r.setAttribute("x", x0.toFixed(1));
      r.setAttribute("width", Math.max(1, x1 - x0).toFixed(1));
      const visible0 = Math.max(x0, GUTTER);  // a band that began before the view is labelled where it shows
      t.setAttribute("x", (visible0 + 3).toFixed(1));
      t.style.display = x1 - visible0 > 40 ? "" : "none";
    });
    d.marks.forEach((m, i) => {
      const [r, t] = this.marks[i], x0 = this.x(m.start), x1 = this.x(m.end);
      r.setAttribute("x", x0.toFixed(1));
      r.setAttribute("width", Math.max(1.5, x1 - x0).toFixed(1));
      t.setAttribute("x", (Math.max(x0, GUTTER) + 3).toFixed(1));
    });
    this.axis();
  };

  Timeline.prototype.axis = function () {
    while (this.axisG.firstChild) this.axisG.removeChild(this.axisG.firstChild);
    const [a, b] = this.view, step = niceStep(b - a, (this.width - GUTTER) / 110);
    for (let v = Math.ceil(a / step) * step; v <= b; v += step) {
      const x = this.x(v);
      el("line", {x1: x, x2: x, y1: AXIS_H - 5, y2: this.height, class: "tick"}, this.axisG);
      const t = el("text", {x: x + 2, y: AXIS_H - 8, class: "tick-label"}, this.axisG);
      t.textContent = fmt(v, this.data.unit);
    }
  };

  Timeline.prototype.setView = function (a, b) {
    const min = this.data.unit === "ms" ? 0.01 : 2;
    if (b - a < min) { const c = (a + b) / 2; a = c - min / 2; b = c + min / 2; }
    this.view = [a, b];
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.layout(); });
    }
  };

  Timeline.prototype.zoom = function (factor, centre) {
    const [a, b] = this.view, c = centre === undefined ? (a + b) / 2 : centre;
    this.setView(c - (c - a) * factor, c + (b - c) * factor);
  };

  Timeline.prototype.focus = function () {
    const d = this.data;
    const i = d.ops.findIndex((o) => o[5] === d.focus);
    if (i < 0) return false;
    const o = d.ops[i], end = o[2] === null ? d.x_max : o[2], span = Math.max(end - o[1], (this.full[1] - this.full[0]) / 50);
    this.setView(o[1] - span * 3, end + span * 3);
    return true;
  };

  Timeline.prototype.tip = function (e, text) {
    const t = this.tooltip;
    t.textContent = text;
    t.style.display = "block";
    t.style.left = Math.min(e.pageX + 12, window.scrollX + window.innerWidth - 420) + "px";
    t.style.top = (e.pageY + 14) + "px";
  };

  Timeline.prototype.untip = function () { this.tooltip.style.display = "none"; };

  Timeline.prototype.bind = function () {
    const svg = this.svg;
    this.opsG.addEventListener("mousemove", (e) => {
      const i = e.target.getAttribute("data-i");
      if (i !== null) this.tip(e, this.data.ops[+i][6]);
    });
    this.opsG.addEventListener("mouseleave", () => this.untip());
    const value = (e) => {
      const box = svg.getBoundingClientRect();
      return this.view[0] + (e.clientX - box.left - GUTTER) / (this.width - GUTTER) * (this.view[1] - this.view[0]);
    };
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(e.deltaY > 0 ? 1.25 : 0.8, value(e));
    }, {passive: false});
    let drag = null;
    svg.addEventListener("mousedown", (e) => { drag = {x: e.clientX, view: this.view.slice()}; e.preventDefault(); });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      const dv = (e.clientX - drag.x) / (this.width - GUTTER) * (drag.view[1] - drag.view[0]);
      this.setView(drag.view[0] - dv, drag.view[1] - dv);
    });
    window.addEventListener("mouseup", () => { drag = null; });
  };

  function start() {
    const tooltip = document.getElementById("tooltip");
    window.splitbrainTimelines = {};
    document.querySelectorAll("[data-timeline]").forEach((root) => {
      const data = JSON.parse(document.getElementById(root.getAttribute("data-timeline")).textContent);
      const t = new Timeline(root, data, tooltip);
      window.splitbrainTimelines[root.id] = t;
      const controls = document.querySelector("[data-controls='" + root.id + "']");
      if (!controls) return;
      controls.addEventListener("click", (e) => {
        const action = e.target.getAttribute("data-action");
        if (action === "fit") t.setView(t.full[0], t.full[1]);
        else if (action === "in") t.zoom(0.5);
        else if (action === "out") t.zoom(2);
        else if (action === "focus") t.focus();
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
