// masklet studio: the page controller. Holds what is open (media, frame, selection, tool) and turns
// user actions into API calls; every redraw comes from a FrameState the server returned.

import { api, preload, urls } from "./js/api.js";
import { bindControls, runAction } from "./js/controls.js";
import { EverythingOptions } from "./js/everything.js";
import { ExportMenu, ImportMenu } from "./js/exporter.js";
import { bindShortcuts, renderHelp } from "./js/keys.js";
import { LabelManager } from "./js/labels.js";
import { ObjectActions } from "./js/objects.js";
import { renderMediaList, renderObjectList } from "./js/sidebar.js";
import { Timeline } from "./js/timeline.js";
import { JobActions } from "./js/jobs.js";
import { $, banner, el, showError } from "./js/ui.js";
import { Viewer } from "./js/viewer.js";

const TOOL_NAMES = { pos: "Positive point", neg: "Negative point", box: "Box" };

class Studio {
  constructor() {
    this.project = null;
    this.media = null;
    this.frame = 0;
    this.fs = null; // FrameState of the frame on screen
    this.selected = null; // object id that prompts go to; null starts/reuses the pending object
    this.afterTrack = null; // media id whose tracking just ended: a click with nothing selected asks
    this.labels = [];
    this.settings = { shape_mode: "mask", polygon_tolerance: 2 };
    this.timelineData = null;
    this.timelineBusy = false; // one timeline request at a time; timelineAgain asks for one more
    this.timelineAgain = false;
    this.revision = 0;
    this.loadSeq = 0;
    this.playing = false;
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

  // ---- frames ------------------------------------------------------------------------------------

  /** Shows frame t: image, FrameState and overlay are fetched together and swapped in at once. */
  async gotoFrame(t) {
    const m = this.media;
    if (!m) return;
    t = Math.max(0, Math.min(m.num_frames - 1, Math.round(Number(t) || 0)));
    const frameChanged = t !== this.frame;
    this.frame = t;
    this.updateFrameControls();
    if (frameChanged) this.optimistic = [];
    // an image set's objects belong to one image: a selection does not carry over to the next
    if (frameChanged && m.kind === "images") this.selected = null;
    const seq = ++this.loadSeq;
    try {
      const imageUrl = urls.image(m.id, t);
      const overlayGuess = this.overlayUrl(m.id, t, this.revision);
      const [fs] = await Promise.all([
        api.get(urls.frame(m.id, t), { quiet: true }),
        preload(imageUrl),
        this.showsOverlay() ? preload(overlayGuess).catch(() => null) : null,
      ]);
      if (seq !== this.loadSeq || this.media !== m) return;
      this.viewer.setFrame(imageUrl, fs.width, fs.height);
      await this.applyFrameState(fs, seq);
    } catch (err) {
      if (seq === this.loadSeq) showError(err);
    }
  }

  refreshFrame() {
    return this.gotoFrame(this.frame);
  }

  overlayUrl(mid, t, rev) {
    return urls.overlay(mid, t, this.selected, rev);
  }

  showsOverlay() {
    return this.settings.shape_mode === "mask";
  }

  /** Draws a FrameState (from a GET or any mutation's response). */
  async applyFrameState(fs, seq = this.loadSeq) {
    if (!this.media || fs.media_id !== this.media.id || fs.frame !== this.frame) return;
    this.fs = fs;
    this.revision = Math.max(this.revision, fs.revision);
    $("#frame-name").textContent = this.media.kind === "images" ? fs.name : "";
    $("#frame-name").title = fs.name;
    this.renderObjects();
    this.renderScene();
    if (this.showsOverlay()) {
      const url = this.overlayUrl(fs.media_id, fs.frame, fs.revision);
      try {
        await preload(url);
      } catch (err) {
        if (seq === this.loadSeq) showError(err);
        return;
      }
      if (seq !== this.loadSeq || this.fs !== fs) return; // a newer frame or state won
      this.viewer.setOverlay(url, true);
    } else {
      this.viewer.setOverlay(null, false);
    }
  }

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

  /** "frame 6" for a video, "image 2 / 3" for an image set (frame index 1). */
  frameLabel(t) {
    const m = this.media;
    return m.kind === "video" ? `frame ${t}` : `image ${t + 1} / ${m.num_frames}`;
  }

  /** The frame index of what the frame field says (image sets count from 1). */
  frameFromInput(value) {
    return this.media?.kind === "images" ? Number(value) - 1 : Number(value);
  }

  updateFrameControls() {
    const m = this.media;
    const t = this.frame;
    const input = $("#frame-input");
    if (document.activeElement !== input) input.value = m?.kind === "images" ? t + 1 : t;
    this.timeline.setFrame(t);
    $("#timecode").textContent = m && m.fps ? timecode(t / m.fps) : "";
    if (!(this.fs && this.fs.frame === t)) $("#frame-name").textContent = "";
    $("#btn-prev-image").disabled = t <= 0;
    $("#btn-next-image").disabled = !m || t >= m.num_frames - 1;
    if (m) history.replaceState(null, "", `#media=${m.id}&frame=${t}`);
  }

  async loadTimeline() {
    const m = this.media;
    if (!m || m.kind !== "video") return;
    if (this.timelineBusy) {
      this.timelineAgain = true;
      return;
    }
    this.timelineBusy = true;
    try {
      const data = await api.get(urls.timeline(m.id), { quiet: true });
      if (this.media === m) {
        this.timelineData = data;
        this.timeline.setData(data);
        this.timeline.setSelected(this.selected);
      }
    } catch (err) {
      showError(err);
    } finally {
      this.timelineBusy = false;
      if (this.timelineAgain) {
        this.timelineAgain = false;
        this.loadTimeline();
      }
    }
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

  // ---- playback ----------------------------------------------------------------------------------

  togglePlay() {
    if (this.playing) this.pause();
    else this.play();
  }

  async play() {
    const m = this.media;
    if (!m || m.kind !== "video" || this.playing) return;
    if (this.frame >= m.num_frames - 1) await this.gotoFrame(0);
    this.playing = true;
    document.body.classList.add("playing");
    const interval = 1000 / (m.fps || 10);
    while (this.playing && this.media === m && this.frame < m.num_frames - 1) {
      const start = performance.now();
      await this.gotoFrame(this.frame + 1);
      const wait = interval - (performance.now() - start);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    this.pause();
  }

  pause() {
    this.playing = false;
    document.body.classList.remove("playing");
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

function timecode(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds - 60 * m;
  return `${m}:${s.toFixed(2).padStart(5, "0")}`;
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
