// Jobs the user starts: tracking a video (with its range) and segment everything on an image. The
// job bar follows the running one; when it ends the frame, timeline and labels are reloaded.

import { api } from "./api.js";
import { JobWatcher, trackRange } from "./tracking.js";
import { $, showError, toast } from "./ui.js";

export class JobActions {
  constructor(studio) {
    this.s = studio;
    this.watcher = new JobWatcher($("#job"), {
      onProgress: (job, media) => this.onProgress(job, media),
      onEnd: (job, media) => this.onEnd(job, media),
    });
  }

  get running() {
    return this.watcher.running;
  }

  /** Follows a job record (one just started, or one found running when the page loaded). */
  follow(job, media) {
    this.watcher.start(job, media);
  }

  busy() {
    if (!this.running) return false;
    toast("A job is already running; cancel it first or wait for it to finish.", "info");
    return true;
  }

  async track() {
    const s = this.s;
    const m = s.media;
    if (!m) return;
    if (m.kind !== "video") {
      toast("Tracking works on videos; image sets have no frames to propagate to.", "info");
      return;
    }
    if (this.busy()) return;
    if (s.fs && s.fs.objects.some((o) => o.status === "pending")) {
      toast("The new object is not finished (F), so it will not be tracked.", "info");
    }
    try {
      const range = trackRange(s.frame, m.num_frames);
      const body = { frame: s.frame, ...range };
      if (range.end_frame === undefined) body.direction = $("#track-direction").value;
      this.follow(await api.post(`/api/media/${m.id}/track`, body), m);
    } catch (err) {
      showError(err);
    }
  }

  async everything() {
    const s = this.s;
    const m = s.media;
    if (!m || m.kind !== "images" || this.busy()) return;
    try {
      this.follow(await api.post(`/api/media/${m.id}/frames/${s.frame}/everything`, {}), m);
    } catch (err) {
      showError(err);
    }
  }

  onProgress(job, media) {
    const s = this.s;
    if (media !== s.media || job.kind !== "track") return;
    s.loadTimeline();
    if (!s.playing) s.refreshFrame();
  }

  onEnd(job, media) {
    const s = this.s;
    const everything = job.kind === "everything";
    if (job.state === "done" && everything) {
      const n = job.object_ids.length;
      toast(`Segment everything: ${n} object${n === 1 ? "" : "s"} on this image.`, "ok");
    } else if (job.state === "done") toast(`Tracking finished: ${job.done} frames.`, "ok");
    else if (job.state === "cancelled" && everything) toast("Segment everything cancelled; nothing was added.", "info");
    else if (job.state === "cancelled") toast(`Tracking cancelled; the ${job.done} finished frames are kept.`, "info");
    else if (job.error) toast(`${everything ? "Segment everything" : "Tracking"} failed: ${job.error}`, "error");
    // the next click with nothing selected may be a correction of a tracked object: ask (objects.js)
    if (!everything && job.state !== "failed") s.afterTrack = media.id;
    if (media === s.media) {
      s.loadTimeline();
      s.refreshFrame();
    }
    s.reloadLabels();
  }
}
