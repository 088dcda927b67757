// The API from the page: the key from this tab's session storage, sent as a bearer token.
const KEY = "visionfn.key";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY); },
};

// The API's own message: `detail` (pydantic's list as "loc: msg"), or the seed's error + details.
export function messageOf(status, body) {
  if (body && typeof body === "object") {
    const detail = body.detail ?? body.error;
    if (Array.isArray(detail)) {
      return detail.map((p) => (p.loc ? `${p.loc.join(".")}: ${p.msg}` : p.msg ?? JSON.stringify(p))).join("; ");
    }
    if (detail) return body.details && body.error ? `${body.error}: ${body.details}` : String(detail);
  }
  if (typeof body === "string" && body) return body;
  return `HTTP ${status}`;
}

let onUnauthorized = () => {};
export function whenUnauthorized(handler) { onUnauthorized = handler; }

// fetch with the key; JSON answers parsed; an error answer throws ApiError with the API's message.
export async function api(path, { method = "GET", json, form, query, accept, raw = false, signal } = {}) {
  const headers = { Authorization: `Bearer ${session.key}` };
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form) body = form;
  if (accept) headers.Accept = accept;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== null && value !== "") params.set(name, value);
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `The platform did not answer (${error.message})`);
  }
  if (raw && response.ok) return response;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const message = messageOf(response.status, data);
    if (response.status === 401) onUnauthorized(message);
    throw new ApiError(response.status, message, data);
  }
  return data;
}

// --- large files -----------------------------------------------------------------------------
// One call carries at most 4,706,304 bytes (AWS Lambda's 6 MB payload with a base64 body): the
// files of an asynchronous submit go in the request while together they stay under this; above it
// the largest go through the bucket first. The margin is room for the rest of the multipart body
// (boundaries, part headers, the fields, a chain's steps).
export const SYNC_BODY_BYTES = 4706304;
export const INLINE_FILES_BYTES = SYNC_BODY_BYTES - 200 * 1024;

// The file fields to send through the bucket so that the rest fit in the request: the largest first.
export function bucketFiles(sizes, limit = INLINE_FILES_BYTES) {
  const throughBucket = new Set();
  let inline = Object.values(sizes).reduce((sum, size) => sum + size, 0);
  for (const [name, size] of Object.entries(sizes).sort((a, b) => b[1] - a[1])) {
    if (inline <= limit) break;
    throughBucket.add(name);
    inline -= size;
  }
  return throughBucket;
}

// What an upload declares: the file's image/* or video/* type, else application/octet-stream
// (which every file field takes: PLY files, files the browser has no type for).
export function uploadType(file) {
  return /^(image|video)\//.test(file.type) ? file.type : "application/octet-stream";
}

function bucketMessage(status, text) {
  const part = (tag) => text.match(new RegExp(`<${tag}>([^<]*)</${tag}>`))?.[1];
  return part("Code") ? `the bucket refused it: ${part("Code")}${part("Message") ? `: ${part("Message")}` : ""}` : `the bucket answered HTTP ${status}`;
}

// A file sent to the bucket: POST /api/v1/uploads, then its presigned POST (the policy's fields in
// order, the file last; no key goes to the bucket). Resolves to the key a route takes as `<field>_key`.
export async function uploadFile(file) {
  const ticket = await api("/api/v1/uploads", { method: "POST",
    json: { filename: file.name || "upload", content_type: uploadType(file), size: file.size } });
  const form = new FormData();
  for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
  form.append("file", file);
  let response;
  try {
    response = await fetch(ticket.url, { method: "POST", body: form, credentials: "omit" });
  } catch (error) {
    throw new ApiError(0, `${file.name} could not be sent to the bucket at ${new URL(ticket.url).origin} (${error.message}); `
      + "a file this large goes there directly, which the bucket's CORS rules and this page's connect-src must allow");
  }
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    throw new ApiError(response.status, `${file.name}: ${bucketMessage(response.status, text)}`, text);
  }
  return ticket.key;
}

// POST an asynchronous route's form: `files` is [[field, File], ...], `fields` its other values.
// Files that would make the request larger than one call carries go through the bucket and the
// form names each by its key (`video_key`, `image_key`, ...): the same task either way.
export async function submitTask(path, files, fields = {}) {
  const throughBucket = bucketFiles(Object.fromEntries(files.map(([name, file]) => [name, file.size])));
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
  for (const [name, file] of files) {
    if (throughBucket.has(name)) form.append(`${name}_key`, await uploadFile(file));
    else form.append(name, file);
  }
  return api(path, { method: "POST", form });
}

// A file of one of the owner's tasks as an object URL (an <img src> cannot send the key). One
// larger than an answer carries is a 303 to the bucket: fetch follows it and, the bucket being
// another origin, leaves the Authorization header behind.
const blobs = new Map();
export async function fileUrl(key) {
  if (!blobs.has(key)) {
    blobs.set(key, api(`/api/v1/files/${key.split("/").map(encodeURIComponent).join("/")}`, { raw: true })
      .then((response) => response.blob())
      .then((blob) => URL.createObjectURL(blob))
      .catch((error) => { blobs.delete(key); throw error; }));
  }
  return blobs.get(key);
}

// Small DOM helpers: h("tag", {attrs}, children...)
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let noticeTimer;
export function notify(message, kind = "error") {
  const box = document.getElementById("notice");
  box.textContent = message;
  box.className = kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 12000 : 4000);
}

// Show an API error where the user acts (a status line) and in the notice.
export function showError(target, error) {
  const message = error instanceof ApiError ? `${error.status ? `${error.status}: ` : ""}${error.message}` : String(error.message || error);
  if (target) { target.textContent = message; target.className = "status error"; }
  notify(message, "error");
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

// The OpenAPI document, read once: forms are built from its schemas.
let documentPromise;
export function openapi() {
  documentPromise ??= fetch("/openapi.json").then((response) => response.json());
  return documentPromise;
}

export async function formSchema(path) {
  const doc = await openapi();
  return doc.paths[path].post.requestBody.content["multipart/form-data"].schema;
}
