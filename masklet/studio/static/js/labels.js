// The label manager dialog: rename, recolor, merge, delete unused, add.

import { api } from "./api.js";
import { confirmDialog, el, icon, showError, toast } from "./ui.js";

export class LabelManager {
  /** onChanged(labels) runs after every successful change with the fresh label list. */
  constructor(dialog, onChanged) {
    this.dialog = dialog;
    this.onChanged = onChanged;
    this.body = dialog.querySelector("#labels-body");
    this.labels = [];
    const form = dialog.querySelector("#label-add-form");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const name = form.elements.name.value.trim();
      if (!name) return;
      this.change(() => api.post("/api/labels", { name, color: form.elements.color.value })).then((ok) => {
        if (ok) form.elements.name.value = "";
      });
    });
  }

  async open() {
    try {
      this.render(await api.get("/api/labels"));
    } catch (err) {
      showError(err);
      return;
    }
    if (!this.dialog.open) this.dialog.showModal();
  }

  /** Runs one change, reloads the list, re-renders; resolves false (and toasts) on failure. */
  async change(fn) {
    try {
      await fn();
      const labels = await api.get("/api/labels");
      this.render(labels);
      this.onChanged(labels);
      return true;
    } catch (err) {
      showError(err);
      this.render(this.labels);
      return false;
    }
  }

  render(labels) {
    this.labels = labels;
    if (!labels.length) {
      this.body.replaceChildren(el("tr", {}, el("td.empty-hint", { colSpan: 5 }, "No labels yet: finishing an object creates its label.")));
      return;
    }
    this.body.replaceChildren(...labels.map((lab) => this.row(lab)));
  }

  row(lab) {
    const color = el("input.color-input", { type: "color", value: lab.color, title: "Label color" });
    color.addEventListener("change", () => this.change(() => api.patch(`/api/labels/${lab.id}`, { color: color.value })));
    const name = el("input.text-input.label-name", { type: "text", value: lab.name, "aria-label": "Label name" });
    const rename = () => {
      const next = name.value.trim();
      if (next && next !== lab.name) this.change(() => api.patch(`/api/labels/${lab.id}`, { name: next }));
      else name.value = lab.name;
    };
    name.addEventListener("change", rename);
    name.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        name.blur();
      }
    });
    const others = this.labels.filter((o) => o.id !== lab.id);
    const target = el(
      "select.select.merge-target",
      { "aria-label": "Merge into", disabled: !others.length },
      el("option", { value: "" }, "Merge into…"),
      ...others.map((o) => el("option", { value: o.id }, o.name)),
    );
    target.addEventListener("change", async () => {
      const into = others.find((o) => String(o.id) === target.value);
      if (!into) return;
      const yes = await confirmDialog(
        `Merge “${lab.name}” into “${into.name}”? Its ${lab.count} object(s) move to “${into.name}” and “${lab.name}” is removed.`,
        { ok: "Merge", danger: false },
      );
      if (yes) this.change(() => api.post(`/api/labels/${lab.id}/merge`, { into: into.id }));
      else target.value = "";
    });
    const del = el(
      "button.icon-btn.delete",
      {
        type: "button",
        disabled: lab.count > 0,
        title: lab.count > 0 ? "In use: merge it into another label instead" : "Delete this unused label",
        onclick: () => this.change(() => api.del(`/api/labels/${lab.id}`)).then((ok) => ok && toast(`Deleted label “${lab.name}”`, "ok")),
      },
      icon("trash"),
    );
    return el(
      "tr",
      { dataset: { labelId: lab.id, name: lab.name } },
      el("td", {}, color),
      el("td", {}, name),
      el("td.num", {}, String(lab.count)),
      el("td", {}, target),
      el("td", {}, del),
    );
  }
}
