// Segment everything: the options menu (points per side and the quality thresholds, saved with the
// project's settings) next to the button that starts the job.

import { $ } from "./ui.js";

// The generator's values when the project saved none (the studio samples 16 x 16 points).
export const EVERYTHING_DEFAULTS = {
  points_per_side: 16,
  pred_iou_thresh: 0.8,
  stability_score_thresh: 0.95,
  min_mask_region_area: 0,
};

export class EverythingOptions {
  /** onChange(options) saves them (PATCH /api/settings {everything}). */
  constructor(button, form, onChange) {
    this.button = button;
    this.form = form;
    this.onChange = onChange;
    button.addEventListener("click", (e) => {
      e.stopPropagation();
      this.toggle();
    });
    form.addEventListener("submit", (e) => e.preventDefault());
    form.addEventListener("change", () => this.save());
    document.addEventListener("pointerdown", (e) => {
      if (!form.hidden && !form.contains(e.target) && !button.contains(e.target)) this.toggle(false);
    });
  }

  toggle(show = this.form.hidden) {
    this.form.hidden = !show;
    this.button.classList.toggle("active", show);
  }

  /** Fills the fields from the project's saved options. */
  show(saved) {
    const values = { ...EVERYTHING_DEFAULTS, ...(saved || {}) };
    for (const [name, value] of Object.entries(values)) {
      const input = this.form.elements[name];
      if (input && document.activeElement !== input) input.value = value;
    }
  }

  save() {
    const options = {};
    for (const name of Object.keys(EVERYTHING_DEFAULTS)) {
      const raw = $(`[name="${name}"]`, this.form).value;
      if (raw !== "") options[name] = Number(raw);
    }
    this.onChange(options);
  }
}
