// The export menu: pick a format and a scope, POST /api/export, offer the zip download. Exports hold
// the annotated frames unless "All frames" is checked.

import { api, withToken } from "./api.js";
import { $, el, showError } from "./ui.js";

export const FORMATS = [
  { id: "coco", name: "COCO", detail: "instance masks as RLE" },
  { id: "coco_polygon", name: "COCO polygons", detail: "masks as polygons" },
  { id: "yolo_seg", name: "YOLO segmentation", detail: "polygon .txt per image" },
  { id: "yolo_det", name: "YOLO detection", detail: "boxes .txt per image" },
  { id: "labelme", name: "LabelMe", detail: "one JSON per image" },
  { id: "mot", name: "MOT", detail: "tracks as boxes (videos)" },
  { id: "png", name: "PNG masks", detail: "an index mask per frame" },
  { id: "mp4", name: "Overlay video", detail: "MP4 with masks drawn" },
];

export class ExportMenu {
  /** getMedia() -> the open media or null (for the "this media" scope). */
  constructor(button, menu, getMedia) {
    this.button = button;
    this.menu = menu;
    this.getMedia = getMedia;
    this.list = $("#export-formats", menu);
    this.result = $("#export-result", menu);
    this.list.replaceChildren(
      ...FORMATS.map((f) =>
        el(
          "button.menu-item",
          { type: "button", dataset: { format: f.id }, onclick: () => this.run(f) },
          el("span.menu-item-name", {}, f.name),
          el("span.menu-item-detail", {}, f.detail),
        ),
      ),
    );
    button.addEventListener("click", (e) => {
      e.stopPropagation();
      this.toggle();
    });
    document.addEventListener("pointerdown", (e) => {
      if (!this.menu.hidden && !this.menu.contains(e.target) && e.target !== button) this.toggle(false);
    });
  }

  toggle(show = this.menu.hidden) {
    this.menu.hidden = !show;
    this.button.classList.toggle("active", show);
    if (show) {
      const media = this.getMedia();
      const scope = $("#export-scope-media", this.menu);
      scope.disabled = !media;
      $("#export-scope-media-name", this.menu).textContent = media ? media.name : "no media open";
      if (!media) $("#export-scope-all", this.menu).checked = true;
    }
  }

  async run(format) {
    const media = this.getMedia();
    const onlyThis = $("#export-scope-media", this.menu).checked && media;
    const allFrames = $("#export-all-frames", this.menu).checked;
    const body = { format: format.id, media_ids: onlyThis ? [media.id] : null, all_frames: allFrames };
    this.menu.classList.add("working");
    try {
      const res = await api.post("/api/export", body);
      this.showResult(format, res);
    } catch (err) {
      showError(err);
    } finally {
      this.menu.classList.remove("working");
    }
  }

  showResult(format, res) {
    const count = res.files ? res.files.length : 0;
    const frames = `${res.frames} frame${res.frames === 1 ? "" : "s"}`;
    const link = el(
      "a.button.primary.export-download",
      { href: withToken(res.download), download: `${res.name}.zip` },
      "Download .zip",
    );
    this.result.hidden = false;
    this.result.replaceChildren(
      el("div.export-title", {}, `${format.name}: ${count} file${count === 1 ? "" : "s"} written (${frames})`),
      el("code.export-path", { title: res.path }, res.path),
      link,
    );
  }
}

export const IMPORTS = [
  { id: "batch", name: "Batch run (machine pre-labels)", hint: "the --out folder of masklet batch track" },
  { id: "coco", name: "COCO", hint: "a COCO JSON file" },
  { id: "yolo", name: "YOLO", hint: "a folder of YOLO label files" },
  { id: "labelme", name: "LabelMe", hint: "a folder of LabelMe JSON files" },
];

// The import menu: a server-side path (inside the opened folders or the project, or the folder given
// with --import) and its format, POST /api/import; done() reloads what the app shows.
export class ImportMenu {
  constructor(button, menu, done) {
    this.menu = menu;
    this.button = button;
    this.done = done;
    this.format = $("#import-format", menu);
    this.path = $("#import-path", menu);
    this.result = $("#import-result", menu);
    this.format.replaceChildren(...IMPORTS.map((f) => el("option", { value: f.id }, f.name)));
    const hint = () => (this.path.placeholder = IMPORTS.find((f) => f.id === this.format.value).hint);
    this.format.addEventListener("change", hint);
    hint();
    $("#import-run", menu).addEventListener("click", () => this.run());
    button.addEventListener("click", (e) => {
      e.stopPropagation();
      this.menu.hidden = !this.menu.hidden;
      this.button.classList.toggle("active", !this.menu.hidden);
    });
  }

  async run() {
    const body = { format: this.format.value, path: this.path.value.trim() };
    this.menu.classList.add("working");
    try {
      const res = await api.post("/api/import", body);
      let text = `${res.objects} object${res.objects === 1 ? "" : "s"}, ${res.masks} masks imported`;
      if (res.videos) text += ` into ${res.videos.join(", ") || "no video"} (machine-made)`;
      if (res.left_out && res.left_out.length) text += `; no video named ${res.left_out.join(", ")}: left out`;
      this.result.hidden = false;
      this.result.textContent = text;
      await this.done();
    } catch (err) {
      showError(err);
    } finally {
      this.menu.classList.remove("working");
    }
  }
}
