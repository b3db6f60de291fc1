// Object actions: prompts, finish, clear, undo/redo, relabel, delete. Mutations run one after the
// other in the order the user made them, so a quick second click goes to the object the first made.

import { api } from "./api.js";
import { choiceDialog, confirmDialog, labelDialog, showError, toast } from "./ui.js";

const MAX_CHOICES = 8; // objects offered when a click after tracking could be a correction

export class ObjectActions {
  constructor(studio) {
    this.s = studio;
    this.queue = Promise.resolve();
  }

  /** Chains fn after the mutations already queued; errors become toasts. */
  serial(fn) {
    const run = this.queue.then(fn).catch(showError);
    this.queue = run;
    return run;
  }

  frameObjects() {
    return this.s.fs ? this.s.fs.objects : [];
  }

  pending() {
    return this.frameObjects().find((o) => o.status === "pending") || null;
  }

  /** What finish/clear/undo act on: the selected object on this frame, else the pending object. */
  target() {
    const objs = this.frameObjects();
    if (this.s.selected != null) {
      const sel = objs.find((o) => o.id === this.s.selected);
      if (sel) return sel;
    }
    return this.pending();
  }

  describe(obj) {
    return `“${obj.label || "new object"}” #${obj.track_id}`;
  }

  /**
   * Finished objects a click could be correcting (those not on this frame first), when the click could
   * as well start a new object: right after tracking, with nothing selected and no new object open.
   */
  correctionCandidates() {
    const s = this.s;
    const fs = s.fs;
    if (!fs || s.afterTrack !== s.media?.id || s.selected != null || this.pending()) return [];
    const open = (o) => o.status === "done" && (o.end_frame == null || o.end_frame > fs.frame);
    return [...(fs.absent || []).filter(open), ...fs.objects.filter((o) => o.status === "done")];
  }

  /** Resolves with the object id the click corrects, "new", or null (cancelled). */
  async askTarget(candidates) {
    const shown = candidates.slice(0, MAX_CHOICES);
    const absent = new Set((this.s.fs.absent || []).map((o) => o.id));
    const name = (o) => `“${o.label || "unlabeled"}” #${o.track_id}`;
    const title = shown.length === 1 ? `New object or correct ${name(shown[0])}?` : "New object or correct one?";
    return choiceDialog({
      title,
      message: "Tracking just ended and no object is selected: should this click start a new object, or correct a tracked one on this frame?",
      options: [
        ...shown.map((o) => ({
          value: o.id,
          label: `Correct ${name(o)}`,
          detail: absent.has(o.id) ? "not on this frame" : "on this frame",
        })),
        { value: "new", label: "New object", detail: "a new track starts here" },
      ],
    });
  }

  addPrompt(prompt) {
    const s = this.s;
    if (!s.media) return null;
    const candidates = this.correctionCandidates();
    if (!candidates.length) return this.sendPrompt(prompt, undefined);
    return this.askTarget(candidates).then((choice) => {
      if (choice === null) return null;
      s.afterTrack = null;
      if (choice === "new") return this.sendPrompt(prompt, null);
      s.select(choice, { toggle: false });
      return this.sendPrompt(prompt, choice);
    });
  }

  /** Sends a prompt for `objectId` (undefined: whatever is selected when it is sent). */
  sendPrompt(prompt, objectId) {
    const s = this.s;
    const m = s.media;
    const t = s.frame;
    const entry = { prompt };
    s.optimistic.push(entry);
    s.renderScene();
    return this.serial(async () => {
      try {
        const target = objectId === undefined ? s.selected : objectId;
        const fs = await api.post(`/api/media/${m.id}/frames/${t}/prompts`, { object_id: target, prompt });
        if (s.media !== m) return;
        s.afterTrack = null;
        s.selected = fs.object_id ?? target;
        s.timeline.setSelected(s.selected);
        s.optimistic = s.optimistic.filter((x) => x !== entry);
        s.applyFrameState(fs);
        s.loadTimeline();
      } finally {
        s.optimistic = s.optimistic.filter((x) => x !== entry);
        s.renderScene();
      }
    });
  }

  newObject() {
    const pending = this.pending();
    this.s.afterTrack = null; // the next click starts a new object: no need to ask
    this.s.select(null, { toggle: false });
    if (pending) {
      toast("There is one new object at a time: finish it (F) or clear it (B); your next prompts go to it.", "info");
    } else {
      toast("New object: click on it, or drag a box with the box tool (R).", "info", { timeout: 2000 });
    }
  }

  async finish() {
    await this.queue; // prompts still in flight belong to the object being finished
    const s = this.s;
    const obj = this.pending() || this.target();
    if (!obj) {
      toast("Nothing to finish: click on an object to segment it first.", "info");
      return;
    }
    if (obj.status !== "pending") {
      await this.relabel(obj);
      return;
    }
    // an empty field: the previous object's label would be one Enter away from a wrong label
    const name = await labelDialog({ title: `Finish object #${obj.track_id}`, labels: s.labels, action: "Finish" });
    if (!name) return;
    await this.serial(async () => {
      const res = await api.post(`/api/objects/${obj.id}/finish`, { label: name });
      if (s.selected === obj.id || s.selected == null) s.selected = null;
      s.timeline.setSelected(s.selected);
      await s.reloadLabels();
      if (res.media_id === s.media?.id && res.frame === s.frame) s.applyFrameState(res);
      else s.refreshFrame();
      s.loadTimeline();
      const info = res.object || { track_id: obj.track_id, label: name };
      toast(`Object #${info.track_id} “${info.label}” finished.`, "ok");
    });
  }

  async relabel(obj) {
    const name = await labelDialog({
      title: `Rename ${this.describe(obj)}`,
      initial: obj.label || "",
      labels: this.s.labels,
      action: "Rename",
    });
    if (!name || name === obj.label) return;
    await this.serial(async () => {
      await api.patch(`/api/objects/${obj.id}`, { label: name });
      await this.s.reloadLabels();
      this.s.refreshFrame();
      this.s.loadTimeline();
    });
  }

  clear() {
    return this.serial(async () => {
      const s = this.s;
      const obj = this.target();
      if (!obj || !(obj.prompts || []).length) {
        toast("No prompts to clear on this frame.", "info", { timeout: 2000 });
        return;
      }
      const fs = await api.post(`/api/objects/${obj.id}/clear`, { frame: s.frame });
      if (!fs.objects.some((o) => o.id === obj.id) && s.selected === obj.id) s.selected = null;
      s.applyFrameState(fs);
      s.loadTimeline();
    });
  }

  undoRedo(kind) {
    return this.serial(async () => {
      const s = this.s;
      const obj = this.target();
      const allowed = obj && (kind === "undo" ? obj.can_undo : obj.can_redo);
      if (!allowed) {
        toast(`Nothing to ${kind} for this object on this frame.`, "info", { timeout: 2000 });
        return;
      }
      const fs = await api.post(`/api/objects/${obj.id}/${kind}`, { frame: s.frame });
      if (!fs.objects.some((o) => o.id === obj.id) && s.selected === obj.id) s.selected = null;
      s.applyFrameState(fs);
      s.loadTimeline();
    });
  }

  async deleteFrom(obj) {
    const s = this.s;
    const t = s.frame;
    const yes = await confirmDialog(
      `Delete ${this.describe(obj)} from frame ${t} to the end? Its masks and prompts there are removed; earlier frames stay.`,
      { ok: "Delete from here" },
    );
    if (!yes) return;
    await this.serial(async () => {
      await api.post(`/api/objects/${obj.id}/delete_from`, { frame: t });
      s.refreshFrame();
      s.loadTimeline();
      toast(`${this.describe(obj)} now ends before frame ${t}.`, "ok");
    });
  }

  async remove(obj) {
    const s = this.s;
    const where = s.media?.kind === "video" ? " on every frame" : "";
    const yes = await confirmDialog(`Delete ${this.describe(obj)}${where}? This cannot be undone.`);
    if (!yes) return;
    await this.serial(async () => {
      await api.del(`/api/objects/${obj.id}`);
      if (s.selected === obj.id) s.selected = null;
      s.refreshFrame();
      s.loadTimeline();
      s.reloadLabels();
      toast(`Deleted ${this.describe(obj)}.`, "ok");
    });
  }

  deleteSelected() {
    const s = this.s;
    const obj =
      this.target() || (s.timelineData ? s.timelineData.objects.find((o) => o.id === s.selected) : null);
    if (!obj) {
      toast("Select an object first (click it in the list, or Alt+click it).", "info", { timeout: 2500 });
      return null;
    }
    return this.remove(obj);
  }
}
