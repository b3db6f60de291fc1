// Small DOM helpers: element builder, toasts, and promise-based dialogs.

/** el("div.row.active", {title: "x", onclick}, child, "text") -> HTMLElement. */
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith("--")) node.style.setProperty(prop, v);
        else node.style[prop] = v;
      }
    }
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);

const ICONS = {
  trash: "M4 7h16M9 7V4h6v3m-8 0 1 13h8l1-13",
  cut: "M5 12h9m0 0-3-3m3 3-3 3M19 5v14",
  close: "M6 6l12 12M18 6 6 18",
};

/** An inline stroke icon (24x24 path data from ICONS). */
export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** A non-blocking message at the bottom right; kind is "error", "info" or "ok". */
export function toast(message, kind = "info", { timeout = kind === "error" ? 7000 : 3500, html = null } = {}) {
  const box = $("#toasts");
  const close = el("button.toast-close", { title: "Dismiss", "aria-label": "Dismiss" }, icon("close"));
  const body = el("div.toast-body");
  if (html) body.append(html);
  else body.textContent = message;
  const node = el(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" }, body, close);
  const remove = () => {
    node.classList.add("leaving");
    setTimeout(() => node.remove(), 180);
  };
  close.addEventListener("click", remove);
  box.append(node);
  while (box.children.length > 5) box.firstElementChild.remove();
  if (timeout) setTimeout(remove, timeout);
  return node;
}

/** Shows an error (an ApiError or any exception) as a toast; never throws. */
export function showError(err) {
  const message = err && err.message ? err.message : String(err);
  toast(message, "error");
  if (!(err && "status" in err)) console.error(err);
}

/** A yes/no question in a modal dialog; resolves true when confirmed. */
export function confirmDialog(message, { ok = "Delete", danger = true } = {}) {
  const dialog = $("#confirm-dialog");
  $("#confirm-message", dialog).textContent = message;
  const okButton = $("#confirm-ok", dialog);
  okButton.textContent = ok;
  okButton.classList.toggle("danger", danger);
  dialog.returnValue = "";
  dialog.showModal();
  okButton.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/**
 * Asks for a label: text input with <datalist> autocomplete plus clickable chips of the known labels.
 * Resolves with the trimmed name, or null when cancelled (Escape or Cancel).
 */
export function labelDialog({ title, initial = "", labels = [], action = "Finish" }) {
  const dialog = $("#label-dialog");
  const input = $("#label-input", dialog);
  const chips = $("#label-chips", dialog);
  $("#label-dialog-title", dialog).textContent = title;
  $("#label-ok", dialog).textContent = action;
  input.value = initial;
  input.onkeydown = (e) => {
    if (e.key === "Enter" && !e.isComposing) {
      e.preventDefault();
      dialog.close("ok");
    }
  };
  chips.replaceChildren(
    ...labels.map((lab) =>
      el(
        "button.chip",
        {
          type: "button",
          onclick: () => {
            input.value = lab.name;
            dialog.close("ok");
          },
        },
        el("span.swatch", { style: { background: lab.color } }),
        lab.name,
      ),
    ),
  );
  dialog.returnValue = "";
  dialog.showModal();
  input.focus();
  input.select();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const name = input.value.trim();
        resolve(dialog.returnValue === "ok" && name ? name : null);
      },
      { once: true },
    );
  });
}

/**
 * Asks which of several answers applies: one button per option ({value, label, detail}); the first
 * button has the focus (Enter picks it). Resolves with the chosen value, or null when cancelled.
 */
export function choiceDialog({ title, message = "", options }) {
  const dialog = $("#choice-dialog");
  $("#choice-title", dialog).textContent = title;
  $("#choice-message", dialog).textContent = message;
  const buttons = options.map((opt, i) =>
    el(
      `button.choice${i === 0 ? ".primary" : ""}`,
      { type: "submit", value: `choice:${i}`, dataset: { choice: String(opt.value) } },
      el("span.choice-label", {}, opt.label),
      opt.detail ? el("span.choice-detail", {}, opt.detail) : null,
    ),
  );
  $("#choice-options", dialog).replaceChildren(...buttons);
  dialog.returnValue = "";
  dialog.showModal();
  if (buttons.length) buttons[0].focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const m = /^choice:(\d+)$/.exec(dialog.returnValue);
        resolve(m ? options[Number(m[1])].value : null);
      },
      { once: true },
    );
  });
}

/** A message above the frame that stays until dismissed (kind "warn" or "info"); returns its node. */
export function banner(message, kind = "warn", { id = null, dismissible = true } = {}) {
  const root = $("#banners");
  if (id) root.querySelector(`[data-banner="${id}"]`)?.remove();
  const node = el(`div.banner.${kind}`, { role: kind === "warn" ? "alert" : "status", dataset: { banner: id || "" } });
  node.append(el("span.banner-text", {}, message));
  if (dismissible) {
    const close = el("button.icon-only.banner-close", { type: "button", title: "Dismiss", "aria-label": "Dismiss" }, icon("close"));
    close.addEventListener("click", () => node.remove());
    node.append(close);
  }
  root.append(node);
  return node;
}

/** True while focus is in a text field or a modal is open: single-key shortcuts must not fire. */
export function typingOrModal(event) {
  const t = event.target;
  if (document.querySelector("dialog[open]")) return true;
  if (!t || !t.tagName) return false;
  if (t.isContentEditable) return true;
  if (t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
  if (t.tagName === "INPUT") return !["button", "checkbox", "radio", "range", "color"].includes(t.type);
  return false;
}
