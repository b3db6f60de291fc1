// The canvas: frame image + mask overlay + SVG vectors under one zoom/pan transform.
//
// The world element holds everything at image scale (1 CSS px = 1 image pixel) and is moved with
// `translate(tx, ty) scale(s)`, so a point at stage offset (sx, sy) is image pixel
// ((sx - tx) / s, (sy - ty) / s) exactly, at any zoom.

const SVG_NS = "http://www.w3.org/2000/svg";
const MIN_SCALE = 0.05;
const MAX_SCALE = 40;
const CLICK_SLOP = 5; // screen px a press may move and still count as a click

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export class Viewer {
  /**
   * stage: the container element; handlers: {onPrompt(prompt), onPick(x, y), onHover(x, y|null),
   * onZoom(scale)}. Prompts carry pixel coordinates of the original image.
   */
  constructor(stage, handlers) {
    this.stage = stage;
    this.handlers = handlers;
    this.world = stage.querySelector("#world");
    this.frameImg = stage.querySelector("#frame-img");
    this.overlayImg = stage.querySelector("#overlay-img");
    this.vectors = stage.querySelector("#vectors");
    this.width = 0;
    this.height = 0;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.fitted = true;
    this.tool = "pos";
    this.spaceHeld = false;
    this.drag = null;
    this.scene = null;
    this.bindEvents();
  }

  bindEvents() {
    const s = this.stage;
    s.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    s.addEventListener("pointerdown", (e) => this.onDown(e));
    s.addEventListener("pointermove", (e) => this.onMove(e));
    s.addEventListener("pointerup", (e) => this.onUp(e));
    s.addEventListener("pointercancel", () => this.endDrag());
    s.addEventListener("pointerleave", () => this.handlers.onHover?.(null));
    s.addEventListener("contextmenu", (e) => e.preventDefault());
    s.addEventListener("auxclick", (e) => e.preventDefault());
    new ResizeObserver(() => {
      if (this.fitted) this.fit();
    }).observe(s);
  }

  setTool(tool) {
    this.tool = tool;
    this.updateCursor();
  }

  setSpace(held) {
    this.spaceHeld = held;
    this.updateCursor();
  }

  updateCursor() {
    let mode = this.tool === "box" ? "box" : "point";
    if (this.spaceHeld) mode = "grab";
    if (this.drag && this.drag.kind === "pan") mode = "grabbing";
    this.stage.dataset.cursor = mode;
  }

  /** Shows an image of the given pixel size; refits the view when the size changes. */
  setFrame(url, width, height) {
    const resized = width !== this.width || height !== this.height;
    this.width = width;
    this.height = height;
    for (const node of [this.frameImg, this.overlayImg]) {
      node.style.width = `${width}px`;
      node.style.height = `${height}px`;
    }
    this.vectors.setAttribute("width", width);
    this.vectors.setAttribute("height", height);
    this.vectors.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (this.frameImg.getAttribute("src") !== url) this.frameImg.src = url;
    this.stage.classList.add("has-frame");
    if (resized) this.fit();
  }

  setOverlay(url, visible) {
    if (url && this.overlayImg.getAttribute("src") !== url) this.overlayImg.src = url;
    this.overlayImg.hidden = !visible || !url;
  }

  clear() {
    this.frameImg.removeAttribute("src");
    this.overlayImg.removeAttribute("src");
    this.vectors.replaceChildren();
    this.stage.classList.remove("has-frame");
    this.width = this.height = 0;
  }

  // ---- view transform ------------------------------------------------------------------------

  fit() {
    if (!this.width) return;
    const r = this.stage.getBoundingClientRect();
    const pad = 24;
    const s = Math.min((r.width - 2 * pad) / this.width, (r.height - 2 * pad) / this.height);
    this.scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, s > 0 ? s : 1));
    this.tx = (r.width - this.width * this.scale) / 2;
    this.ty = (r.height - this.height * this.scale) / 2;
    this.fitted = true;
    this.apply();
  }

  /** Zooms by `factor` keeping the image point under stage offset (sx, sy) fixed. */
  zoomAt(factor, sx, sy) {
    const next = Math.max(MIN_SCALE, Math.min(MAX_SCALE, this.scale * factor));
    const ix = (sx - this.tx) / this.scale;
    const iy = (sy - this.ty) / this.scale;
    this.scale = next;
    this.tx = sx - ix * next;
    this.ty = sy - iy * next;
    this.fitted = false;
    this.apply();
  }

  zoomCenter(factor) {
    const r = this.stage.getBoundingClientRect();
    this.zoomAt(factor, r.width / 2, r.height / 2);
  }

  /** Zoom to 100 % around the stage centre. */
  actualSize() {
    this.zoomCenter(1 / this.scale);
  }

  apply() {
    this.world.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    this.world.classList.toggle("pixelated", this.scale >= 3);
    this.redraw();
    this.handlers.onZoom?.(this.scale);
  }

  /** Client (viewport) coordinates -> image pixel coordinates (floats, not clamped). */
  toImage(clientX, clientY) {
    const r = this.stage.getBoundingClientRect();
    return {
      x: (clientX - r.left - this.stage.clientLeft - this.tx) / this.scale,
      y: (clientY - r.top - this.stage.clientTop - this.ty) / this.scale,
    };
  }

  inside(p) {
    return p.x >= 0 && p.y >= 0 && p.x < this.width && p.y < this.height;
  }

  // ---- pointer -----------------------------------------------------------------------------------

  onWheel(e) {
    e.preventDefault();
    if (!this.width) return;
    const unit = e.deltaMode === 1 ? 0.05 : 0.0015;
    const r = this.stage.getBoundingClientRect();
    this.zoomAt(Math.exp(-e.deltaY * unit), e.clientX - r.left, e.clientY - r.top);
  }

  onDown(e) {
    if (!this.width || this.drag) return;
    this.stage.focus({ preventScroll: true });
    const pan = e.button === 1 || e.button === 2 || (e.button === 0 && this.spaceHeld);
    if (!pan && e.button !== 0) return;
    e.preventDefault();
    this.stage.setPointerCapture(e.pointerId);
    const start = this.toImage(e.clientX, e.clientY);
    let kind = pan ? "pan" : "click";
    if (!pan && this.tool === "box") kind = "box";
    this.drag = { kind, x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, start, end: start, moved: false };
    this.updateCursor();
  }

  onMove(e) {
    const p = this.toImage(e.clientX, e.clientY);
    this.handlers.onHover?.(this.inside(p) ? p : null);
    const d = this.drag;
    if (!d) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (Math.hypot(dx, dy) > CLICK_SLOP) d.moved = true;
    if (d.kind === "click" && d.moved) d.kind = "pan"; // a left drag in point mode pans
    if (d.kind === "pan") {
      this.tx = d.tx + dx;
      this.ty = d.ty + dy;
      this.fitted = false;
      this.apply();
    } else if (d.kind === "box") {
      d.end = p;
      this.redraw();
    }
    this.updateCursor();
  }

  onUp(e) {
    const d = this.drag;
    if (!d) return;
    this.endDrag();
    const p = this.toImage(e.clientX, e.clientY);
    if (d.kind === "click" && e.button === 0) {
      if (!this.inside(p)) return;
      if (e.altKey) this.handlers.onPick?.(p.x, p.y);
      else {
        const positive = (this.tool !== "neg") !== e.shiftKey;
        this.handlers.onPrompt({ kind: "point", x: round2(p.x), y: round2(p.y), positive });
      }
    } else if (d.kind === "box") {
      const clamp = (v, hi) => Math.max(0, Math.min(hi, v));
      const x0 = clamp(Math.min(d.start.x, p.x), this.width);
      const x1 = clamp(Math.max(d.start.x, p.x), this.width);
      const y0 = clamp(Math.min(d.start.y, p.y), this.height);
      const y1 = clamp(Math.max(d.start.y, p.y), this.height);
      if ((x1 - x0) * this.scale < 4 || (y1 - y0) * this.scale < 4) return; // a click, not a box
      this.handlers.onPrompt({ kind: "box", x0: round2(x0), y0: round2(y0), x1: round2(x1), y1: round2(y1) });
    }
  }

  endDrag() {
    this.drag = null;
    this.updateCursor();
    this.redraw();
  }

  // ---- vectors -----------------------------------------------------------------------------------

  /**
   * scene: {objects (FrameState objects), selected (object id|null), shapeMode, extra: [{objectId,
   * prompt}] drawn before the server confirms them}.
   */
  render(scene) {
    this.scene = scene;
    this.redraw();
  }

  redraw() {
    const g = this.vectors;
    g.replaceChildren();
    const scene = this.scene;
    const k = 1 / this.scale; // one screen pixel in image units
    if (scene) {
      const vectorMode = scene.shapeMode === "polygon" || scene.shapeMode === "rectangle";
      if (vectorMode) for (const obj of scene.objects) this.drawShape(g, obj, scene, k);
      for (const obj of scene.objects) {
        const dim = scene.selected != null && obj.id !== scene.selected;
        for (const pr of obj.prompts || []) this.drawPrompt(g, pr, obj.color, dim, k);
      }
      for (const { prompt } of scene.extra || []) this.drawPrompt(g, prompt, "#ffffff", false, k, true);
    }
    const d = this.drag;
    if (d && d.kind === "box") {
      const x = Math.min(d.start.x, d.end.x);
      const y = Math.min(d.start.y, d.end.y);
      const w = Math.abs(d.end.x - d.start.x);
      const h = Math.abs(d.end.y - d.start.y);
      g.append(svg("rect", { x, y, width: w, height: h, class: "box-preview", "stroke-width": 1.5 * k,
        "stroke-dasharray": `${5 * k} ${4 * k}` }));
    }
  }

  drawShape(g, obj, scene, k) {
    const selected = obj.id === scene.selected;
    const common = {
      fill: obj.color, stroke: obj.color, "fill-opacity": selected ? 0.45 : 0.28,
      "stroke-width": (selected ? 2.5 : 1.5) * k, class: "shape", "data-object-id": obj.id,
    };
    if (scene.shapeMode === "rectangle") {
      if (!obj.bbox) return;
      const [x, y, w, h] = obj.bbox;
      g.append(svg("rect", { ...common, x, y, width: w, height: h }));
      return;
    }
    for (const poly of obj.polygons || []) {
      const pts = [];
      for (let i = 0; i + 1 < poly.length; i += 2) pts.push(`${poly[i]},${poly[i + 1]}`);
      g.append(svg("polygon", { ...common, points: pts.join(" ") }));
      if (selected) {
        for (let i = 0; i + 1 < poly.length; i += 2) {
          g.append(svg("rect", { class: "vertex", x: poly[i] - 2 * k, y: poly[i + 1] - 2 * k,
            width: 4 * k, height: 4 * k, "stroke-width": k }));
        }
      }
    }
  }

  drawPrompt(g, pr, color, dim, k, optimistic = false) {
    const cls = `prompt${dim ? " dim" : ""}${optimistic ? " optimistic" : ""}`;
    if (pr.kind === "box") {
      g.append(svg("rect", {
        class: `${cls} box`, x: pr.x0, y: pr.y0, width: pr.x1 - pr.x0, height: pr.y1 - pr.y0,
        stroke: color, "stroke-width": 2 * k, "stroke-dasharray": `${6 * k} ${4 * k}`,
      }));
      return;
    }
    const r = 7 * k;
    const grp = svg("g", { class: `${cls} ${pr.positive ? "pos" : "neg"}`, "data-x": pr.x, "data-y": pr.y });
    grp.append(svg("circle", { cx: pr.x, cy: pr.y, r, "stroke-width": 1.75 * k }));
    const a = r * 0.5;
    const lineAttrs = { "stroke-width": 1.75 * k, class: "glyph" };
    grp.append(svg("line", { ...lineAttrs, x1: pr.x - a, y1: pr.y, x2: pr.x + a, y2: pr.y }));
    if (pr.positive) grp.append(svg("line", { ...lineAttrs, x1: pr.x, y1: pr.y - a, x2: pr.x, y2: pr.y + a }));
    g.append(grp);
  }
}

function round2(v) {
  return Math.round(v * 100) / 100;
}
