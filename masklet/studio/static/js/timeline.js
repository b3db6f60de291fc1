// The bottom timeline: a frame ruler with a playhead, one lane per object with its mask runs and
// prompted frames. Click or drag anywhere over the lanes to scrub.

import { el } from "./ui.js";

const TICK_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];

export class Timeline {
  /** handlers: {onSeek(frame), onSelect(objectId)} */
  constructor(root, handlers) {
    this.root = root;
    this.handlers = handlers;
    this.numFrames = 0;
    this.frame = 0;
    this.selected = null;
    this.objects = [];
    this.labels = el("div.tl-labels");
    this.ruler = el("div.tl-ruler");
    this.rows = el("div.tl-rows");
    this.playhead = el("div.tl-playhead", {}, el("div.tl-playhead-cap"));
    this.lanes = el("div.tl-lanes", {}, this.ruler, this.rows, this.playhead);
    root.replaceChildren(this.labels, this.lanes);
    this.bindScrub();
    new ResizeObserver(() => this.renderRuler()).observe(this.lanes);
  }

  bindScrub() {
    let scrubbing = false;
    const frameAt = (e) => {
      const r = this.lanes.getBoundingClientRect();
      const f = Math.floor(((e.clientX - r.left) / r.width) * this.numFrames);
      return Math.max(0, Math.min(this.numFrames - 1, f));
    };
    this.lanes.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || !this.numFrames) return;
      scrubbing = true;
      this.lanes.setPointerCapture(e.pointerId);
      this.handlers.onSeek(frameAt(e));
    });
    this.lanes.addEventListener("pointermove", (e) => {
      if (scrubbing && frameAt(e) !== this.frame) this.handlers.onSeek(frameAt(e));
    });
    const stop = () => {
      scrubbing = false;
    };
    this.lanes.addEventListener("pointerup", stop);
    this.lanes.addEventListener("pointercancel", stop);
  }

  setMedia(numFrames) {
    this.numFrames = numFrames;
    this.objects = [];
    this.frame = 0;
    this.renderRuler();
    this.renderRows();
    this.setFrame(0);
  }

  /** data: GET /api/media/{mid}/timeline. */
  setData(data) {
    this.numFrames = data.num_frames;
    this.objects = data.objects;
    this.renderRows();
  }

  setFrame(t) {
    this.frame = t;
    const n = Math.max(1, this.numFrames);
    this.playhead.style.left = `${(t / n) * 100}%`;
    this.playhead.style.width = `${100 / n}%`;
  }

  setSelected(oid) {
    this.selected = oid;
    for (const node of this.root.querySelectorAll("[data-object-id]")) {
      node.classList.toggle("selected", Number(node.dataset.objectId) === oid);
    }
  }

  pct(frame) {
    return `${(frame / Math.max(1, this.numFrames)) * 100}%`;
  }

  renderRuler() {
    const n = this.numFrames;
    const width = this.lanes.clientWidth || 1;
    const perFrame = width / Math.max(1, n);
    const step = TICK_STEPS.find((s) => s * perFrame >= 52) || TICK_STEPS[TICK_STEPS.length - 1];
    const ticks = [];
    if (perFrame >= 7) {
      for (let t = 0; t < n; t++) if (t % step) ticks.push(el("div.tl-tick.minor", { style: { left: this.pct(t) } }));
    }
    for (let t = 0; t < n; t += step) {
      ticks.push(el("div.tl-tick", { style: { left: this.pct(t) } }, el("span", {}, String(t))));
    }
    this.ruler.replaceChildren(...ticks);
  }

  renderRows() {
    const labels = [el("div.tl-label.tl-head", {}, "Tracks")];
    const rows = [];
    if (!this.objects.length) {
      labels.push(el("div.tl-label.tl-empty", {}, ""));
      rows.push(el("div.tl-lane.tl-empty", {}, "Finish an object (f) and track it (Ctrl+M): its frames show here."));
    }
    for (const obj of this.objects) {
      const covered = obj.runs.reduce((acc, [a, b]) => acc + b - a + 1, 0);
      const data = { objectId: obj.id, trackId: obj.track_id, frames: covered, status: obj.status };
      const select = () => this.handlers.onSelect(obj.id);
      labels.push(
        el(
          "div.tl-label",
          { dataset: data, title: `${obj.label || "unlabeled"} #${obj.track_id}: ${covered} frames`, onclick: select },
          el("span.swatch", { style: { background: obj.color } }),
          el("span.tl-name", {}, obj.label || "pending"),
          el("span.tl-id", {}, `#${obj.track_id}`),
        ),
      );
      const parts = obj.runs.map(([a, b]) =>
        el("div.tl-run", {
          dataset: { first: a, last: b },
          title: `frames ${a}–${b}`,
          style: { left: this.pct(a), width: this.pct(b - a + 1), background: obj.color },
        }),
      );
      for (const [a, b] of obj.machine || []) {
        parts.push(el("div.tl-machine", { dataset: { first: a, last: b },
          title: `frames ${a}–${b}: machine-made pre-labels (a re-track may replace them)`,
          style: { left: this.pct(a), width: this.pct(b - a + 1) } }));
      }
      for (const f of obj.prompted || []) {
        parts.push(el("div.tl-prompted", { dataset: { frame: f }, title: `prompted on frame ${f}`,
          style: { left: `calc(${this.pct(f + 0.5)} - 4px)` } }));
      }
      rows.push(el("div.tl-lane", { dataset: data }, parts));
    }
    this.labels.replaceChildren(...labels);
    this.rows.replaceChildren(...rows);
    this.setSelected(this.selected);
  }
}
