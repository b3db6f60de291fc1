// Wiring of the page's buttons and fields to the studio, and the named actions shortcuts run.

import { onBusyChange } from "./api.js";
import { syncTrackRange } from "./tracking.js";
import { $, showError } from "./ui.js";

/** Runs a named action (from a shortcut or a button) on the studio; errors become toasts. */
export function runAction(studio, action, e = null) {
  const m = studio.media;
  const objects = studio.objects;
  const actions = {
    toolPos: () => studio.setTool("pos"),
    toolNeg: () => studio.setTool("neg"),
    toolBox: () => studio.setTool("box"),
    newObject: () => objects.newObject(),
    finish: () => objects.finish(),
    clearPrompts: () => objects.clear(),
    undo: () => objects.undoRedo("undo"),
    redo: () => objects.undoRedo("redo"),
    track: () => studio.jobs.track(),
    step: () => studio.gotoFrame(studio.frame + (e.key === "ArrowLeft" ? -1 : 1) * (e.shiftKey ? 10 : 1)),
    jumpEnd: () => m && studio.gotoFrame(e.key === "Home" ? 0 : m.num_frames - 1),
    togglePlay: () => studio.togglePlay(),
    deleteSelected: () => objects.deleteSelected(),
    escape: () => escape(studio),
    fit: () => studio.viewer.fit(),
    actualSize: () => studio.viewer.actualSize(),
    help: () => $("#help-dialog").showModal(),
  };
  Promise.resolve().then(actions[action]).catch(showError);
}

/** Escape closes the export menu, else cancels a drag, else deselects. */
function escape(studio) {
  if (!$("#export-menu").hidden) studio.exportMenu.toggle(false);
  else if (studio.viewer.drag) studio.viewer.endDrag();
  else studio.select(null, { toggle: false });
}

export function bindControls(studio) {
  for (const b of document.querySelectorAll("[data-tool]")) {
    b.addEventListener("click", () => studio.setTool(b.dataset.tool));
  }
  const click = (id, fn) => $(id).addEventListener("click", fn);
  const act = (name) => () => runAction(studio, name);
  click("#btn-new", act("newObject"));
  click("#btn-finish", act("finish"));
  click("#btn-clear", act("clearPrompts"));
  click("#btn-undo", act("undo"));
  click("#btn-redo", act("redo"));
  click("#btn-track", act("track"));
  click("#btn-help", act("help"));
  click("#btn-play", act("togglePlay"));
  click("#btn-everything", () => studio.jobs.everything());
  click("#btn-labels", () => studio.labelManager.open());
  click("#btn-first", () => studio.gotoFrame(0));
  click("#btn-last", () => studio.media && studio.gotoFrame(studio.media.num_frames - 1));
  for (const id of ["#btn-prev", "#btn-prev-image"]) click(id, () => studio.gotoFrame(studio.frame - 1));
  for (const id of ["#btn-next", "#btn-next-image"]) click(id, () => studio.gotoFrame(studio.frame + 1));
  click("#zoom-in", () => studio.viewer.zoomCenter(1.25));
  click("#zoom-out", () => studio.viewer.zoomCenter(0.8));
  click("#zoom-fit", () => studio.viewer.fit());

  const input = $("#frame-input");
  input.addEventListener("change", () => studio.gotoFrame(studio.frameFromInput(input.value)));
  $("#track-range").addEventListener("change", () => {
    syncTrackRange();
    if ($("#track-range").value === "until" && studio.media) {
      $("#track-range-value").value = studio.media.num_frames - 1; // a frame to edit from
    }
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") input.blur();
  });
  $("#shape-mode").addEventListener("change", (e) => studio.patchSettings({ shape_mode: e.target.value }));
  $("#polygon-tolerance").addEventListener("change", (e) => {
    const v = Number(e.target.value);
    if (Number.isFinite(v) && v >= 0) studio.patchSettings({ polygon_tolerance: v });
  });

  // Buttons keep no focus, so Space and the arrow keys stay canvas shortcuts after a click.
  document.addEventListener("mouseup", (e) => {
    const b = e.target.closest && e.target.closest("button");
    if (b && !b.closest("dialog")) b.blur();
  });

  let busyTimer = null;
  onBusyChange((busy) => {
    clearTimeout(busyTimer);
    document.body.dataset.busy = busy ? "true" : "false";
    if (busy) busyTimer = setTimeout(() => $("#busy").classList.add("on"), 150);
    else $("#busy").classList.remove("on");
  });

  window.addEventListener("hashchange", () => studio.followHash());
  window.addEventListener("error", (e) => showError(e.error || e.message));
  window.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    showError(e.reason);
  });
}
