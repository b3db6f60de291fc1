// Keyboard shortcuts: one table drives both the key handling and the help overlay.

import { el, typingOrModal } from "./ui.js";

/** [keys shown in help, description, matcher(event), action name on the studio]. */
export const SHORTCUTS = [
  ["Q", "Positive point tool", (e) => plain(e, "q"), "toolPos"],
  ["E", "Negative point tool", (e) => plain(e, "e"), "toolNeg"],
  ["R", "Box tool", (e) => plain(e, "r"), "toolBox"],
  ["Shift + click", "Negative point (with the point tool)", null, null],
  ["Alt + click", "Select the object under the cursor", null, null],
  ["N", "New object: the next prompts start a new object", (e) => plain(e, "n"), "newObject"],
  ["F", "Finish the object and name it", (e) => plain(e, "f"), "finish"],
  ["B", "Clear the object's prompts on this frame", (e) => plain(e, "b"), "clearPrompts"],
  ["Ctrl + Z", "Undo the last prompt", (e) => ctrl(e, "z") && !e.shiftKey, "undo"],
  ["Ctrl + Shift + Z / Ctrl + Y", "Redo", (e) => (ctrl(e, "z") && e.shiftKey) || ctrl(e, "y"), "redo"],
  ["Ctrl + M", "Track finished objects from this frame", (e) => ctrl(e, "m"), "track"],
  ["← / →", "Previous / next frame or image", (e) => e.key === "ArrowLeft" || e.key === "ArrowRight", "step"],
  ["Shift+← / Shift+→", "10 frames back / forward", null, null],
  ["Home / End", "First / last frame", (e) => e.key === "Home" || e.key === "End", "jumpEnd"],
  ["K", "Play / pause", (e) => plain(e, "k"), "togglePlay"],
  ["Delete", "Delete the selected object", (e) => e.key === "Delete" && !e.ctrlKey, "deleteSelected"],
  ["Esc", "Deselect / cancel", (e) => e.key === "Escape", "escape"],
  ["Wheel", "Zoom around the cursor", null, null],
  ["Space + drag / Right drag", "Pan (middle drag too)", null, null],
  ["0", "Fit the image to the view", (e) => plain(e, "0"), "fit"],
  ["1", "Zoom to 100 %", (e) => plain(e, "1"), "actualSize"],
  ["?", "This help", (e) => e.key === "?", "help"],
];

function plain(e, key) {
  return !e.ctrlKey && !e.metaKey && !e.altKey && e.key.toLowerCase() === key;
}

function ctrl(e, key) {
  return (e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === key;
}

/** Routes key presses to studio[action](event); space is reported to the viewer for panning. */
export function bindShortcuts(studio) {
  window.addEventListener("keydown", (e) => {
    if (e.key === " " && !typingOrModal(e)) {
      e.preventDefault();
      if (!e.repeat) studio.viewer.setSpace(true);
      return;
    }
    if (typingOrModal(e)) return;
    for (const [, , match, action] of SHORTCUTS) {
      if (match && match(e)) {
        e.preventDefault();
        studio.act(action, e);
        return;
      }
    }
  });
  window.addEventListener("keyup", (e) => {
    if (e.key === " ") studio.viewer.setSpace(false);
  });
  window.addEventListener("blur", () => studio.viewer.setSpace(false));
}

/** Fills the help dialog body from SHORTCUTS. */
export function renderHelp(root) {
  root.replaceChildren(
    ...SHORTCUTS.map(([keys, text]) =>
      el(
        "div.help-row",
        {},
        el("span.help-keys", {}, ...keys.split(" / ").flatMap((k, i) => [i ? " / " : null, el("kbd", {}, k)])),
        el("span.help-text", {}, text),
      ),
    ),
  );
}
