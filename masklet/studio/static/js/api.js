// HTTP client of the studio API: token handling, JSON errors, and the busy counter.

const params = new URLSearchParams(location.search);
const token = params.get("token") || sessionStorage.getItem("masklet_token") || null;
if (token) sessionStorage.setItem("masklet_token", token);

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

let busyCount = 0;
const busyListeners = new Set();

export function onBusyChange(fn) {
  busyListeners.add(fn);
}

function setBusy(delta) {
  busyCount += delta;
  for (const fn of busyListeners) fn(busyCount > 0);
}

/** A URL with the token in its query (for <img src> and download links, which cannot send headers). */
export function withToken(url) {
  if (!token) return url;
  const sep = url.includes("?") ? "&" : "?";
  return `${url}${sep}token=${encodeURIComponent(token)}`;
}

/**
 * One API call. `quiet` calls (polling, background refreshes) do not light the busy indicator.
 * Resolves with the parsed JSON body; rejects with ApiError carrying the server's "error" message.
 */
export async function request(method, url, body = undefined, { quiet = false } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers["X-Masklet-Token"] = token;
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (!quiet) setBusy(+1);
  let resp;
  try {
    resp = await fetch(url, init);
  } catch {
    throw new ApiError("Cannot reach the studio server. Is `masklet studio` still running?", 0);
  } finally {
    if (!quiet) setBusy(-1);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    let message = data && typeof data.error === "string" ? data.error : `${method} ${url} failed (${resp.status})`;
    if (resp.status === 401) {
      message = "This studio needs its access token: open the URL that `masklet studio` printed (it ends in ?token=...).";
    }
    throw new ApiError(message, resp.status);
  }
  return data;
}

export const api = {
  get: (url, opts) => request("GET", url, undefined, opts),
  post: (url, body = {}, opts) => request("POST", url, body, opts),
  patch: (url, body, opts) => request("PATCH", url, body, opts),
  del: (url, opts) => request("DELETE", url, undefined, opts),
};

/** URLs of the media endpoints. */
export const urls = {
  image: (mid, t) => withToken(`/api/media/${mid}/frames/${t}/image`),
  overlay: (mid, t, selected, rev) => {
    const sel = selected == null ? "" : `selected=${selected}&`;
    return withToken(`/api/media/${mid}/frames/${t}/overlay.png?${sel}v=${rev}`);
  },
  frame: (mid, t) => `/api/media/${mid}/frames/${t}`,
  timeline: (mid) => `/api/media/${mid}/timeline`,
};

/** Loads and decodes an image; resolves with the URL once it can be shown without flicker. */
export function preload(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(url);
    img.onerror = () => reject(new ApiError(`Could not load ${url.split("?")[0]}`, 0));
    img.src = url;
  });
}
