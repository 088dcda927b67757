// Webhooks: register, delete, ping; each hook's delivery log with its attempts; redelivery.
import { api, h, notify, showError, when } from "./api.js";

export function mountWebhooks(root) {
  const list = h("ul", { id: "webhook-list", class: "hooks", "aria-label": "Webhooks" });
  const log = h("div", { id: "delivery-log", class: "card", hidden: true, "aria-live": "polite" });
  const status = h("p", { class: "status", role: "status" });
  const url = h("input", { id: "hook-url", type: "url", required: true, placeholder: "https://example.com/hooks/visionfn" });
  const secret = h("input", { id: "hook-secret", type: "password", autocomplete: "off", placeholder: "optional: signs every delivery" });
  const description = h("input", { id: "hook-description", type: "text", maxlength: 256 });
  const done = h("input", { id: "hook-done", type: "checkbox", checked: true, value: "task.done" });
  const failed = h("input", { id: "hook-error", type: "checkbox", checked: true, value: "task.error" });
  const form = h("form", { id: "webhook-form", class: "card" },
    h("div", { class: "fields" },
      h("label", { for: "hook-url" }, "URL ", url),
      h("label", { for: "hook-secret" }, "Secret ", secret),
      h("label", { for: "hook-description" }, "Description ", description),
      h("fieldset", {}, h("legend", {}, "Events"),
        h("label", { class: "check" }, done, " task.done"), h("label", { class: "check" }, failed, " task.error"))),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Add webhook"), status));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { url: url.value.trim(), description: description.value, events: [done, failed].filter((box) => box.checked).map((box) => box.value) };
    if (secret.value) body.secret = secret.value;
    try {
      const hook = await api("/api/v1/webhooks", { method: "POST", json: body });
      status.className = "status ok";
      status.textContent = `Added ${hook.id}`;
      form.reset();
      await refresh();
      openLog(hook.id);
    } catch (error) {
      showError(status, error);
    }
  });

  root.append(h("h2", { id: "webhooks-title" }, "Webhooks"),
    h("p", {}, "Every task of yours that ends (done or error) is POSTed to each hook, signed with its secret."),
    form, h("h3", {}, "Registered"), list, log);

  let openId = null;
  let timer = null;
  let visible = false;

  async function refresh() {
    try {
      const hooks = await api("/api/v1/webhooks");
      list.replaceChildren(...(hooks.length ? hooks.map(row) : [h("li", { class: "muted" }, "No webhook yet")]));
      if (openId && hooks.some((hook) => hook.id === openId)) await renderLog(openId);
    } catch (error) {
      list.replaceChildren(h("li", { class: "status error" }, error.message));
    }
    clearTimeout(timer);
    if (visible) timer = setTimeout(refresh, 3000);
  }

  function row(hook) {
    return h("li", { class: "card", "data-id": hook.id },
      h("div", { class: "row" },
        h("strong", { class: "mono" }, hook.url),
        h("span", { class: `badge ${hook.enabled ? "done" : "error"}` }, hook.enabled ? "enabled" : `disabled: ${hook.disabled_reason || ""}`),
        h("span", { class: "muted" }, `${hook.events.join(", ")} · ${hook.has_secret ? "signed" : "unsigned"} · ${hook.id}`)),
      hook.description ? h("p", {}, hook.description) : null,
      h("div", { class: "row" },
        h("button", { type: "button", class: "quiet", onclick: () => openLog(hook.id) }, "Deliveries"),
        h("button", { type: "button", class: "quiet", onclick: async () => {
          try { await api(`/api/v1/webhooks/${hook.id}/ping`, { method: "POST" }); notify("Ping sent", "ok"); openLog(hook.id); } catch (error) { showError(null, error); }
        } }, "Ping"),
        h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Delete the webhook to ${hook.url} and its delivery log?`)) return;
          try { await api(`/api/v1/webhooks/${hook.id}`, { method: "DELETE" }); if (openId === hook.id) { openId = null; log.hidden = true; } refresh(); } catch (error) { showError(null, error); }
        } }, "Delete")));
  }

  async function openLog(id) {
    openId = id;
    await renderLog(id);
  }

  async function renderLog(id) {
    let page;
    try {
      page = await api(`/api/v1/webhooks/${id}/deliveries`, { query: { limit: 50 } });
    } catch (error) {
      showError(null, error);
      return;
    }
    log.hidden = false;
    const rows = page.deliveries.map((delivery) => {
      const last = delivery.attempts[delivery.attempts.length - 1];
      return h("tr", { "data-state": delivery.state },
        h("td", { class: "mono" }, delivery.id),
        h("td", {}, delivery.event),
        h("td", { class: "mono" }, delivery.task_uid ? delivery.task_uid.slice(0, 8) : ""),
        h("td", {}, h("span", { class: `badge ${delivery.state}` }, delivery.state)),
        h("td", {}, `${delivery.attempts.length}${last ? ` (last: ${last.status_code ?? last.error ?? ""})` : ""}`),
        h("td", {}, when(delivery.created_at)),
        h("td", {}, h("button", { type: "button", class: "quiet", onclick: async () => {
          try { await api(`/api/v1/webhooks/${id}/deliveries/${delivery.id}/redeliver`, { method: "POST" }); notify("Sent again", "ok"); renderLog(id); } catch (error) { showError(null, error); }
        } }, "Redeliver")));
    });
    log.replaceChildren(h("h3", {}, `Deliveries of ${id} (${page.total})`),
      page.deliveries.length
        ? h("div", { class: "scroll" }, h("table", { id: "delivery-table" },
          h("thead", {}, h("tr", {}, ["Delivery", "Event", "Task", "State", "Attempts", "Created", ""].map((name) => h("th", { scope: "col" }, name)))),
          h("tbody", {}, rows)))
        : h("p", { class: "muted" }, "No delivery yet: finish a task or press Ping."));
  }

  return {
    visible(shown) {
      visible = shown;
      if (shown) refresh(); else clearTimeout(timer);
    },
  };
}
