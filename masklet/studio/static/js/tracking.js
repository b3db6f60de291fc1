// Watches a job (tracking, segment everything): polls GET /api/jobs/{id}, drives the progress bar,
// supports cancel. Also reads the tracking range controls of the toolbar.

import { api } from "./api.js";
import { $, showError } from "./ui.js";

const POLL_MS = 300;

/** What the job bar says for a job in each state (`where`: "media name: " or ""). */
function describe(j, where) {
  const counted = `${j.done} / ${j.total || "…"}`;
  if (j.kind === "everything") {
    const made = j.object_ids ? j.object_ids.length : 0;
    return {
      running: j.cancelling ? "Cancelling segment everything…" : `Segment everything ${where}${counted} points`,
      done: `Segment everything: ${made} object${made === 1 ? "" : "s"}`,
      cancelled: "Segment everything cancelled (nothing added)",
      failed: `Segment everything failed${j.error ? `: ${j.error}` : ""}`,
    }[j.state];
  }
  return {
    running: j.cancelling ? `Cancelling after ${j.done} frames…` : `Tracking ${where}${counted} frames`,
    done: `Tracked ${j.done} frames`,
    cancelled: `Cancelled after ${j.done} frames (kept)`,
    failed: `Tracking failed${j.error ? `: ${j.error}` : ""}`,
  }[j.state];
}

export class JobWatcher {
  /** handlers: {onProgress(job, media) when the job's revision changes, onEnd(job, media)}. */
  constructor(root, handlers) {
    this.root = root;
    this.handlers = handlers;
    this.job = null;
    this.media = null;
    this.timer = null;
    this.failures = 0;
    $("#job-cancel", root).addEventListener("click", () => this.cancel());
  }

  get running() {
    return Boolean(this.job && this.job.state === "running");
  }

  /** Follows a job record just returned by the server (its id, kind and totals). */
  start(job, media) {
    clearTimeout(this.timer);
    this.job = { state: "running", done: 0, total: 0, ...job, revision: null };
    this.media = media;
    this.failures = 0;
    this.root.hidden = false;
    this.root.dataset.state = "running";
    this.root.dataset.jobId = job.id;
    this.root.dataset.kind = job.kind || "track";
    this.render();
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  async poll() {
    const current = this.job;
    if (!current) return;
    let job;
    try {
      job = await api.get(`/api/jobs/${current.id}`, { quiet: true });
      this.failures = 0;
    } catch (err) {
      if (++this.failures >= 5 || err.status === 404) {
        showError(err);
        this.finish({ ...current, state: "failed", error: err.message });
      } else {
        this.timer = setTimeout(() => this.poll(), POLL_MS * 2);
      }
      return;
    }
    if (this.job !== current) return; // a newer job replaced this one
    const changed = job.revision !== current.revision;
    this.job = job;
    this.render();
    if (changed) this.handlers.onProgress(job, this.media);
    if (job.state === "running") this.timer = setTimeout(() => this.poll(), POLL_MS);
    else this.finish(job);
  }

  finish(job) {
    clearTimeout(this.timer);
    this.job = job;
    this.root.dataset.state = job.state;
    this.render();
    this.handlers.onEnd(job, this.media);
    setTimeout(() => {
      if (this.job === job) this.root.hidden = true;
    }, 2500);
  }

  /** Asks the server to stop the job: it answers at once and the job ends within a frame or batch. */
  async cancel() {
    if (!this.running) return;
    const button = $("#job-cancel", this.root);
    button.disabled = true;
    try {
      const job = await api.post(`/api/jobs/${this.job.id}/cancel`, {});
      if (this.job && this.job.id === job.id && this.job.state === "running") this.job = { ...this.job, ...job };
      this.render();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  render() {
    const j = this.job;
    if (!j) return;
    const pct = j.total ? Math.round((100 * j.done) / j.total) : 0;
    $("#job-bar", this.root).style.width = `${j.state === "done" ? 100 : pct}%`;
    const where = this.media ? `${this.media.name}: ` : "";
    $("#job-text", this.root).textContent = describe(j, where) || j.state;
    $("#job-cancel", this.root).hidden = j.state !== "running" || Boolean(j.cancelling);
  }
}

/**
 * The range of a tracking request from the toolbar: {} (to the end), {frames: N} or {end_frame: t}
 * (then the direction follows from t). Throws an Error saying what to fix.
 */
export function trackRange(frame, numFrames) {
  const mode = $("#track-range").value;
  if (mode === "end") return {};
  const value = Number($("#track-range-value").value);
  if (!Number.isInteger(value)) throw new Error("Enter a whole number next to the tracking range.");
  if (mode === "count") {
    if (value < 1) throw new Error("Track at least 1 frame.");
    return { frames: value };
  }
  if (value < 0 || value >= numFrames) throw new Error(`Frame ${value} is not in this video (0 to ${numFrames - 1}).`);
  if (value === frame) throw new Error(`Frame ${value} is the frame on screen: pick a frame before or after it.`);
  return { end_frame: value };
}

/** Shows the number field for "N frames" / "to frame"; "to frame" sets the direction itself. */
export function syncTrackRange() {
  const mode = $("#track-range").value;
  const input = $("#track-range-value");
  input.hidden = mode === "end";
  input.min = mode === "count" ? 1 : 0;
  input.title = mode === "count" ? "Frames to track past this one" : "The last frame to track";
  input.setAttribute("aria-label", input.title);
  $("#track-direction").disabled = mode === "until";
}
