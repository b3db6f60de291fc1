// Watches a tracking job: polls GET /api/jobs/{id}, drives the progress bar, supports cancel.

import { api } from "./api.js";
import { $, showError } from "./ui.js";

const POLL_MS = 300;

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

  start(jobId, media) {
    clearTimeout(this.timer);
    this.job = { id: jobId, state: "running", done: 0, total: 0, revision: null };
    this.media = media;
    this.failures = 0;
    this.root.hidden = false;
    this.root.dataset.state = "running";
    this.root.dataset.jobId = jobId;
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

  async cancel() {
    if (!this.running) return;
    const button = $("#job-cancel", this.root);
    button.disabled = true;
    try {
      const job = await api.post(`/api/jobs/${this.job.id}/cancel`, {});
      this.job = { ...this.job, ...job };
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
    const text = {
      running: `Tracking ${where}${j.done} / ${j.total || "…"} frames`,
      done: `Tracked ${j.done} frames`,
      cancelled: `Cancelled after ${j.done} frames (kept)`,
      failed: `Tracking failed${j.error ? `: ${j.error}` : ""}`,
    }[j.state];
    $("#job-text", this.root).textContent = text || j.state;
    $("#job-cancel", this.root).hidden = j.state !== "running";
  }
}
