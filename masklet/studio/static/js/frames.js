// masklet studio: the open media's frames. Loading and drawing a frame (image, FrameState and overlay
// together), the frame controls, the video's timeline data and playback. The page controller (app.js)
// extends this class and supplies the rest: media, viewer, timeline, renderObjects, renderScene.

import { api, preload, urls } from "./api.js";
import { $, showError } from "./ui.js";

export class FrameNavigator {
  constructor() {
    this.timelineBusy = false; // one timeline request at a time; timelineAgain asks for one more
    this.timelineAgain = false;
    this.loadSeq = 0;
    this.playing = false;
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

  // ---- frame controls and timeline ---------------------------------------------------------------

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
}

function timecode(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds - 60 * m;
  return `${m}:${s.toFixed(2).padStart(5, "0")}`;
}
