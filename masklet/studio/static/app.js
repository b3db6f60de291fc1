// masklet studio: the page controller. Holds what is open (media, frame, selection, tool) and turns
// user actions into API calls; every redraw comes from a FrameState the server returned. Loading and
// showing frames, the timeline data and playback are the methods of FrameNavigator (js/frames.js).

import { api } from "./js/api.js";
import { bindControls, runAction } from "./js/controls.js";
import { EverythingOptions } from "./js/everything.js";
import { ExportMenu, ImportMenu } from "./js/exporter.js";
import { FrameNavigator } from "./js/frames.js";
import { bindShortcuts, renderHelp } from "./js/keys.js";
import { LabelManager } from "./js/labels.js";
import { ObjectActions } from "./js/objects.js";
import { renderMediaList, renderObjectList } from "./js/sidebar.js";
import { Timeline } from "./js/timeline.js";
import { JobActions } from "./js/jobs.js";
import { $, banner, el, showError } from "./js/ui.js";
import { Viewer } from "./js/viewer.js";

const TOOL_NAMES = { pos: "Positive point", neg: "Negative point", box: "Box" };

class Studio extends FrameNavigator {
  constructor() {
    super();
    this.project = null;
    this.media = null;
    this.frame = 0;
    this.fs = null; // FrameState of the frame on screen
    this.selected = null; // object id that prompts go to; null starts/reuses the pending object
    this.afterTrack = null; // media id whose tracking just ended: a click with nothing selected asks
    this.labels = [];
    this.settings = { shape_mode: "mask", polygon_tolerance: 2 };
    this.timelineData = null;
    this.revision = 0;
    this.optimistic = [];
    this.viewer = new Viewer($("#stage"), {
      onPrompt: (p) => this.objects.addPrompt(p),
      onPick: (x, y) => this.pickAt(x, y),
      onHover: (p) => {
        $("#hud-pos").textContent = p ? `x ${Math.floor(p.x)}  y ${Math.floor(p.y)}` : "";
      },
      onZoom: (s) => {
        $("#hud-zoom").textContent = `${Math.round(s * 100)}%`;
      },
    });
    this.timeline = new Timeline($("#timeline"), {
      onSeek: (t) => this.gotoFrame(t),
      onSelect: (oid) => this.select(oid, { toggle: false }),
    });
    this.objects = new ObjectActions(this);
    this.jobs = new JobActions(this);
    this.everythingOptions = new EverythingOptions($("#btn-everything-options"), $("#everything-menu"), (options) =>
      this.patchSettings({ everything: options }),
    );
    this.labelManager = new LabelManager($("#labels-dialog"), (labels) => this.labelsChanged(labels));
    this.exportMenu = new ExportMenu($("#btn-export"), $("#export-menu"), () => this.media);
    this.importMenu = new ImportMenu($("#btn-import"), $("#import-menu"), () =>
      this.reloadLabels().then(() => this.labelsChanged(this.labels)),
    );
    bindControls(this);
    bindShortcuts(this);
    renderHelp($("#help-body"));
    this.setTool("pos");
  }

  // ---- startup and media -------------------------------------------------------------------------

  async init() {
    try {
      this.project = await api.get("/api/project");
    } catch (err) {
      showError(err);
      return;
    }
    const p = this.project;
    $("#project-name").textContent = p.name || "";
    $("#project-name").title = p.path || "";
    document.title = p.name ? `${p.name} · masklet studio` : "masklet studio";
    this.revision = p.revision;
    if (p.model && p.model.random_weights) {
      banner(
        `Random weights: the model (${p.model.name}) was started with --random-weights, so its masks mean nothing. ` +
          "Restart masklet studio with --checkpoint PATH (or without --random-weights) to label for real.",
        "warn",
        { id: "random-weights", dismissible: false },
      );
    }
    for (const text of p.warnings || []) banner(text, "warn");
    this.applySettings(p.settings);
    this.setLabels(p.labels);
    const hash = new URLSearchParams(location.hash.slice(1));
    const wanted = p.media.find((m) => String(m.id) === hash.get("media")) || p.media[0];
    this.renderMedia();
    if (wanted) await this.openMedia(wanted, Number(hash.get("frame")) || 0);
    // a tracking job started before this page was (re)loaded: follow it
    const running = (p.jobs || []).find((j) => j.state === "running");
    if (running) {
      const media = p.media.find((m) => m.id === running.media_id) || this.media;
      this.jobs.follow(running, media);
    }
  }

  renderMedia() {
    renderMediaList($("#media-list"), this.project.media, this.media?.id, (m) => this.openMedia(m));
  }

  async openMedia(media, frame = 0) {
    this.pause();
    this.media = media;
    this.selected = null;
    this.afterTrack = null;
    this.fs = null;
    this.timelineData = null;
    document.body.classList.remove("no-media", "kind-video", "kind-images");
    document.body.classList.add(`kind-${media.kind}`);
    // frames are numbered from 0 as in the API; images are counted from 1: "image 2 / 3"
    const images = media.kind === "images";
    $("#frame-input").min = images ? 1 : 0;
    $("#frame-input").max = images ? media.num_frames : media.num_frames - 1;
    $("#frame-count").textContent = `/ ${images ? media.num_frames : media.num_frames - 1}`;
    this.renderMedia();
    this.viewer.clear();
    this.timeline.setMedia(media.num_frames);
    await this.gotoFrame(frame);
    if (media.kind === "video") await this.loadTimeline();
  }

  /** Opens the media and frame named in the URL fragment (#media=ID&frame=T) when they differ. */
  followHash() {
    if (!this.project) return;
    const hash = new URLSearchParams(location.hash.slice(1));
    const media = this.project.media.find((m) => String(m.id) === hash.get("media"));
    const frame = Number(hash.get("frame")) || 0;
    if (media && media !== this.media) this.openMedia(media, frame);
    else if (this.media && frame !== this.frame) this.gotoFrame(frame);
  }

  // ---- drawing -----------------------------------------------------------------------------------

  renderScene() {
    this.viewer.render({
      objects: this.fs ? this.fs.objects : [],
      selected: this.selected,
      shapeMode: this.settings.shape_mode,
      extra: this.optimistic,
    });
  }

  renderObjects() {
    const objects = this.fs ? this.fs.objects : [];
    const info = this.timelineData?.objects.find((o) => o.id === this.selected) || null;
    renderObjectList($("#object-list"), objects, {
      absent: this.fs ? this.fs.absent || [] : [],
      frame: this.frame,
      selected: this.selected,
      selectedInfo: info,
      isVideo: this.media?.kind === "video",
      handlers: {
        onSelect: (oid) => this.select(oid),
        onRelabel: (obj) => this.objects.relabel(obj),
        onDeleteFrom: (obj) => this.objects.deleteFrom(obj),
        onDelete: (obj) => this.objects.remove(obj),
      },
    });
    $("#objects-frame").textContent = this.media ? this.frameLabel(this.frame) : "";
    $("#objects-frame").dataset.frame = this.fs ? String(this.fs.frame) : "";
    const target = this.objects.target();
    $("#btn-undo").disabled = !(target && target.can_undo);
    $("#btn-redo").disabled = !(target && target.can_redo);
    $("#btn-finish").disabled = !target;
    $("#btn-clear").disabled = !(target && target.prompts && target.prompts.length);
    document.body.classList.toggle("has-pending", objects.some((o) => o.status === "pending"));
  }

  // ---- selection and tools -----------------------------------------------------------------------

  select(oid, { toggle = true } = {}) {
    this.selected = toggle && oid === this.selected ? null : oid;
    if (this.selected != null) this.afterTrack = null; // the user said which object clicks go to
    this.timeline.setSelected(this.selected);
    this.renderObjects();
    this.renderScene();
    if (this.fs && this.showsOverlay()) this.applyFrameState(this.fs);
  }

  /** Alt-click: the smallest object whose polygon (or box) contains image point (x, y). */
  pickAt(x, y) {
    const hits = (this.fs?.objects || []).filter((o) => containsPoint(o, x, y));
    hits.sort((a, b) => a.area - b.area);
    this.select(hits.length ? hits[0].id : null, { toggle: false });
  }

  setTool(tool) {
    this.tool = tool;
    this.viewer.setTool(tool);
    for (const b of document.querySelectorAll("[data-tool]")) b.classList.toggle("active", b.dataset.tool === tool);
    $("#hud-tool").textContent = TOOL_NAMES[tool];
  }

  // ---- settings --------------------------------------------------------------------------------

  applySettings(settings) {
    this.settings = { ...this.settings, ...settings };
    this.everythingOptions.show(this.settings.everything);
    $("#shape-mode").value = this.settings.shape_mode;
    $("#polygon-tolerance").value = this.settings.polygon_tolerance;
    document.body.dataset.shape = this.settings.shape_mode;
  }

  async patchSettings(change) {
    try {
      this.applySettings(await api.patch("/api/settings", change));
      await this.refreshFrame();
    } catch (err) {
      showError(err);
      this.applySettings({});
    }
  }

  // ---- labels ------------------------------------------------------------------------------------

  setLabels(labels) {
    this.labels = labels;
    $("#label-options").replaceChildren(...labels.map((l) => el("option", { value: l.name })));
  }

  async reloadLabels() {
    try {
      this.setLabels(await api.get("/api/labels", { quiet: true }));
    } catch (err) {
      showError(err);
    }
  }

  labelsChanged(labels) {
    this.setLabels(labels);
    this.refreshFrame();
    this.loadTimeline();
  }

  // ---- wiring ------------------------------------------------------------------------------------

  /** Runs a named action (from a shortcut or a button); errors become toasts. */
  act(action, e = null) {
    runAction(this, action, e);
  }
}

function containsPoint(obj, x, y) {
  if (obj.polygons && obj.polygons.length) {
    let inside = false;
    for (const p of obj.polygons) {
      for (let i = 0, j = p.length - 2; i < p.length; j = i, i += 2) {
        const [xi, yi, xj, yj] = [p[i], p[i + 1], p[j], p[j + 1]];
        if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
      }
    }
    return inside;
  }
  if (!obj.bbox) return false;
  const [bx, by, bw, bh] = obj.bbox;
  return x >= bx && y >= by && x <= bx + bw && y <= by + bh;
}

const studio = new Studio();
window.maskletStudio = studio; // for debugging from the browser console
studio.init();
