// The left sidebar: the media list and the objects of the current frame.

import { el, icon } from "./ui.js";

function mediaMeta(m) {
  if (m.kind === "video") {
    const fps = m.fps ? ` · ${Math.round(m.fps * 100) / 100} fps` : "";
    return `${m.num_frames} frames · ${m.width}×${m.height}${fps}`;
  }
  return `${m.num_frames} image${m.num_frames === 1 ? "" : "s"}`;
}

const KIND_GLYPH = { video: "▶", images: "▦" };

/** Fills `root` with one button per media; `onOpen(media)` on click. */
export function renderMediaList(root, media, activeId, onOpen) {
  if (!media.length) {
    root.replaceChildren(el("li.empty-hint", {}, "No media opened. Run `masklet studio VIDEO_OR_FOLDER`."));
    return;
  }
  root.replaceChildren(
    ...media.map((m) =>
      el(
        "li",
        {},
        el(
          `button.media-item${m.id === activeId ? ".active" : ""}`,
          { type: "button", dataset: { mediaId: m.id, kind: m.kind }, onclick: () => onOpen(m), title: m.name },
          el(`span.media-kind.${m.kind}`, {}, KIND_GLYPH[m.kind] || "•"),
          el("span.media-text", {}, el("span.media-name", {}, m.name), el("span.media-meta", {}, mediaMeta(m))),
        ),
      ),
    ),
  );
}

/**
 * Fills `root` with the objects of the current frame, then (videos) the video's other objects, greyed:
 * "not on this frame" (lost by tracking, not tracked here yet) or "ended" (deleted from a frame on).
 * Selecting one makes the next click on the image correct it on this frame. `selectedInfo` describes
 * a selected object listed nowhere else. handlers: onSelect(id), onRelabel(obj), onDeleteFrom(obj),
 * onDelete(obj).
 */
export function renderObjectList(root, objects, { absent = [], frame, selected, selectedInfo, isVideo, handlers }) {
  const rows = objects.map((obj) => objectRow(obj, obj.id === selected, isVideo, handlers));
  for (const obj of absent) {
    const ended = obj.end_frame != null && obj.end_frame <= frame;
    rows.push(objectRow({ ...obj, offFrame: ended ? "ended" : "absent" }, obj.id === selected, isVideo, handlers));
  }
  const listed = objects.some((o) => o.id === selected) || absent.some((o) => o.id === selected);
  if (selected != null && !listed && selectedInfo) {
    rows.unshift(objectRow({ ...selectedInfo, offFrame: "absent" }, true, isVideo, handlers));
  }
  if (!rows.length) {
    rows.push(el("li.empty-hint", {}, "No objects here. Click the object to segment; shift-click removes areas."));
  }
  root.replaceChildren(...rows);
}

function offFrameDetail(obj, isSelected) {
  if (obj.offFrame === "ended") return `ended before frame ${obj.end_frame}`;
  return isSelected ? "not on this frame: click the image to add it here" : "not on this frame";
}

// Where a frame's mask came from: a person's (prompted, imported labels) or a model's, unconfirmed
// (a re-track may replace those).
const SOURCES = { prompt: "prompted", import: "imported label", track: "tracked", machine: "batch pre-label", auto: "segment everything" };
const MACHINE_MADE = new Set(["track", "machine", "auto"]);

function objectRow(obj, isSelected, isVideo, handlers) {
  const pending = obj.status === "pending";
  const name = obj.label || (pending ? "new object" : "unlabeled");
  const source = SOURCES[obj.source] || obj.source || "";
  let detail = pending ? "pending · press F to finish" : source;
  if (obj.offFrame) detail = offFrameDetail(obj, isSelected);
  else if (!pending && obj.area) detail = `${source || "mask"} · ${formatArea(obj.area)}`;
  const machine = !obj.offFrame && MACHINE_MADE.has(obj.source);
  const stop = (fn) => (e) => {
    e.stopPropagation();
    fn(obj);
  };
  const actions = el("span.obj-actions");
  if (!pending && isVideo && !obj.offFrame) {
    actions.append(
      el("button.icon-btn.delete-from", { type: "button", title: "Delete from this frame on", onclick: stop(handlers.onDeleteFrom) },
        icon("cut")),
    );
  }
  actions.append(
    el("button.icon-btn.delete", { type: "button", title: "Delete this object entirely", onclick: stop(handlers.onDelete) },
      icon("trash")),
  );
  const off = obj.offFrame ? ".off-frame" : "";
  return el(
    `li.object-row${isSelected ? ".selected" : ""}${pending ? ".pending" : ""}${off}`,
    {
      dataset: { objectId: obj.id, trackId: obj.track_id, status: obj.status, label: obj.label || "", offFrame: obj.offFrame || "", source: obj.source || "" },
      style: { "--obj-color": obj.color },
      tabIndex: 0,
      title: pending ? "Pending object" : "Click to select, double-click to rename",
      onclick: () => handlers.onSelect(obj.id),
      ondblclick: () => !pending && handlers.onRelabel(obj),
    },
    el("span.swatch", { style: { background: obj.color } }),
    el("span.obj-label", {}, name),
    el("span.obj-track", {}, `#${obj.track_id}`),
    el(`span.status-pill.${obj.status}`, {}, obj.status),
    el(
      "span.obj-detail",
      {},
      machine
        ? el("span.machine-tag", { title: "Made by a model, not confirmed here: a re-track may replace it. Click to correct it." }, "machine")
        : null,
      detail,
    ),
    actions,
  );
}

function formatArea(a) {
  if (a >= 1e6) return `${(a / 1e6).toFixed(1)} Mpx`;
  if (a >= 1e3) return `${(a / 1e3).toFixed(1)} kpx`;
  return `${a} px`;
}
