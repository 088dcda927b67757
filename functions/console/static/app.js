// The console: sign-in, then one page per family of work, chosen by the URL's #fragment.
import { api, notify, session, showError, whenUnauthorized } from "./api.js";
import { mountFaces } from "./faces.js";
import { mountInspection } from "./inspection.js";
import { mountMatching } from "./matching.js";
import { mountWebhooks } from "./webhooks.js";

const PAGES = { faces: mountFaces, matching: mountMatching, webhooks: mountWebhooks, inspection: mountInspection };
const mounted = new Map();
const $ = (id) => document.getElementById(id);

function signedIn() {
  $("sign-in").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  show(location.hash.slice(1));
}

function signedOut(message) {
  session.key = null;
  for (const page of Object.keys(PAGES)) $(`page-${page}`).hidden = true;
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  if (message) notify(message);
  $("api-key").focus();
}

function show(name) {
  if (!session.key) return;
  const page = PAGES[name] ? name : "faces";
  for (const other of Object.keys(PAGES)) {
    const section = $(`page-${other}`);
    section.hidden = other !== page;
    mounted.get(other)?.visible?.(other === page);
  }
  for (const link of document.querySelectorAll("#tabs a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!mounted.has(page)) mounted.set(page, PAGES[page]($(`page-${page}`)) || {});
  mounted.get(page)?.visible?.(true);
}

document.addEventListener("DOMContentLoaded", () => {
  whenUnauthorized((message) => signedOut(`${message}: sign in again`));
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    session.key = key;
    try {
      await api("/api/v1/tasks", { query: { limit: 1 } });
    } catch (error) {
      if (error.status !== 401) showError(null, error);
      session.key = null;
      return;
    }
    $("api-key").value = "";
    signedIn();
  });
  $("sign-out").addEventListener("click", () => signedOut());
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  if (session.key) signedIn();
  else $("api-key").focus();
});
