// Matching: forms built from the OpenAPI document and pre-filled from the owner's settings,
// chain steps added and ordered here, the task list polled live, results, the settings editor.
import { api, fileUrl, formSchema, h, notify, showError, submitTask, when } from "./api.js";

const TOOLS = ["template", "feature", "surface"];
const FILE_LABELS = {
  image: "Image", template: "Template", query_image: "Query image", train_image: "Train image",
  model_file: "Model (PLY)", scene_file: "Scene (PLY)",
};
const ACCEPT = { model_file: ".ply", scene_file: ".ply" };
let counter = 0;

async function settingsOf(tool) {
  return (await api(`/api/v1/settings/${tool}`)).params;
}

// A tool's parameters: not its files, nor the `<file>_key` fields (the page sends a file through
// the bucket by itself when it is large), nor a chain's steps.
function parameters(schema) {
  const files = new Set(Object.entries(schema.properties).filter(([, spec]) => spec.format === "binary").map(([name]) => name));
  return Object.entries(schema.properties).filter(([name, spec]) => spec.format !== "binary" && spec.type !== undefined
    && spec.title !== "Steps" && !(name.endsWith("_key") && files.has(name.slice(0, -4))));
}

// Inputs for a tool's parameters; read() gives the values as the API takes them.
function paramFields(schema, values, prefix) {
  const inputs = {};
  const fields = parameters(schema).map(([name, spec]) => {
    const id = `${prefix}-${name}-${++counter}`;
    const value = values?.[name] ?? spec.default;
    let input;
    if (spec.enum) {
      input = h("select", { id, name }, spec.enum.map((option) => h("option", { value: option, selected: option === value }, option)));
    } else if (spec.type === "boolean") {
      input = h("input", { id, name, type: "checkbox", checked: Boolean(value) });
    } else {
      const numeric = spec.type === "number" || spec.type === "integer";
      input = h("input", { id, name, type: numeric ? "number" : "text", value: value ?? "",
        min: spec.minimum ?? spec.exclusiveMinimum, max: spec.maximum, step: spec.type === "integer" ? 1 : "any", required: numeric });
    }
    inputs[name] = [input, spec];
    return h("label", { for: id, class: spec.type === "boolean" ? "check" : "" },
      spec.type === "boolean" ? [input, ` ${spec.title || name}`] : [`${spec.title || name} `, input]);
  });
  const read = () => {
    const out = {};
    for (const [name, [input, spec]] of Object.entries(inputs)) {
      if (spec.type === "boolean") out[name] = input.checked;
      else if (input.value === "") continue;
      else if (spec.type === "integer") out[name] = parseInt(input.value, 10);
      else if (spec.type === "number") out[name] = parseFloat(input.value);
      else out[name] = input.value;
    }
    return out;
  };
  return { element: h("div", { class: "fields" }, fields), read };
}

// The form's chosen files as [[field, File], ...].
function chosenFiles(form) {
  return [...form.querySelectorAll("input[type=file]")].map((input) => [input.name, input.files[0]]);
}

function fileInputs(schema, tool) {
  return Object.entries(schema.properties).filter(([, spec]) => spec.format === "binary").map(([name]) => {
    const id = `${tool}-file-${name}`;
    return h("label", { for: id }, `${FILE_LABELS[name] || name} `, h("input", { id, name, type: "file", required: true, accept: ACCEPT[name] || "image/*" }));
  });
}

export function mountMatching(root) {
  const formArea = h("div", { id: "match-form-area" });
  const toolPicker = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Tool" },
    [...TOOLS, "chain"].map((tool) => h("label", {}, h("input", { type: "radio", name: "match-tool", value: tool, checked: tool === "template" }), ` ${tool}`)));
  const taskList = h("ul", { id: "task-list", class: "tasks", "aria-label": "Tasks" });
  const detail = h("div", { id: "task-detail", class: "card", hidden: true, "aria-live": "polite" });
  const settingsArea = h("div", { id: "settings-editor" });
  const liveState = h("span", { class: "muted", id: "task-live" });

  root.append(
    h("h2", { id: "matching-title" }, "Matching"),
    h("div", { class: "columns" },
      h("div", {}, h("h3", {}, "New task"), toolPicker, formArea),
      h("div", {}, h("h3", {}, "Tasks ", liveState), taskList)),
    detail,
    h("details", { class: "card" }, h("summary", {}, "Settings (per-tool defaults)"), settingsArea));

  toolPicker.addEventListener("change", (event) => renderForm(event.target.value));

  async function renderForm(tool) {
    formArea.replaceChildren(h("p", { class: "muted" }, "Loading the form..."));
    try {
      formArea.replaceChildren(tool === "chain" ? await chainForm() : await toolForm(tool));
    } catch (error) {
      formArea.replaceChildren(h("p", { class: "status error" }, error.message));
    }
  }

  async function toolForm(tool) {
    const [schema, values] = await Promise.all([formSchema(`/api/v1/match/${tool}`), settingsOf(tool)]);
    const params = paramFields(schema, values, tool);
    const status = h("p", { class: "status", role: "status" });
    const button = h("button", { type: "submit" }, `Submit ${tool} task`);
    const form = h("form", { id: `match-${tool}`, class: "card" }, fileInputs(schema, tool), params.element, h("div", { class: "row" }, button, status));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await submit(tool, chosenFiles(form), params.read(), status, button);
    });
    return form;
  }

  async function chainForm() {
    const schema = await formSchema("/api/v1/match/chain");
    const toolSchemas = Object.fromEntries(await Promise.all(TOOLS.map(async (tool) => [tool, await formSchema(`/api/v1/match/${tool}`)])));
    const steps = h("ol", { id: "chain-steps", class: "steps" });
    const status = h("p", { class: "status", role: "status" });
    const button = h("button", { type: "submit" }, "Submit chain task");
    const addStep = async (tool = "template") => {
      const values = await settingsOf(tool);
      const picker = h("select", { "aria-label": "Step tool", class: "step-tool" }, TOOLS.map((name) => h("option", { value: name, selected: name === tool }, name)));
      let params = paramFields(toolSchemas[tool], values, `step-${tool}`);
      const item = h("li", { class: "step card" });
      const move = (offset) => {
        const sibling = offset < 0 ? item.previousElementSibling : item.nextElementSibling;
        if (sibling) (offset < 0 ? sibling.before(item) : sibling.after(item));
        renumber();
      };
      const controls = h("div", { class: "row" }, h("strong", { class: "step-number" }), picker,
        h("button", { type: "button", class: "quiet", "aria-label": "Move step up", onclick: () => move(-1) }, "↑"),
        h("button", { type: "button", class: "quiet", "aria-label": "Move step down", onclick: () => move(1) }, "↓"),
        h("button", { type: "button", class: "quiet", "aria-label": "Remove step", onclick: () => { item.remove(); renumber(); } }, "✕"));
      item.append(controls, params.element);
      item.readStep = () => ({ tool: picker.value, params: params.read() });
      picker.addEventListener("change", async () => {
        const next = paramFields(toolSchemas[picker.value], await settingsOf(picker.value), `step-${picker.value}`);
        params.element.replaceWith(next.element);
        params = next;
      });
      steps.append(item);
      renumber();
    };
    const renumber = () => steps.querySelectorAll(".step-number").forEach((node, index) => { node.textContent = `Step ${index + 1}`; });
    await addStep("template");
    const form = h("form", { id: "match-chain", class: "card" }, fileInputs(schema, "chain"),
      h("p", { class: "muted" }, "Steps run in order until one finds a match. The image goes to each tool as its first file, the template as its second."),
      steps,
      h("button", { type: "button", class: "quiet", id: "add-step", onclick: () => addStep("template") }, "+ Add step"),
      h("div", { class: "row" }, button, status));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await submit("chain", chosenFiles(form), { steps: JSON.stringify([...steps.children].map((item) => item.readStep())) }, status, button);
    });
    return form;
  }

  async function submit(tool, files, fields, status, button) {
    button.disabled = true;
    status.className = "status";
    status.textContent = "Uploading...";
    try {
      const task = await submitTask(`/api/v1/match/${tool}`, files, fields);
      status.className = "status ok";
      status.textContent = `Task ${task.uid.slice(0, 8)} ${task.status}`;
      await refresh();
      openTask(task.uid);
    } catch (error) {
      showError(status, error);
    } finally {
      button.disabled = false;
    }
  }

  // --- the task list, polled while the page is shown -------------------------------------
  let timer = null;
  let visible = false;
  let openUid = null;
  async function refresh() {
    let page;
    try {
      page = await api("/api/v1/tasks", { query: { limit: 20 } });
    } catch (error) {
      liveState.textContent = `(${error.message})`;
      return;
    }
    const running = page.tasks.some((task) => task.status === "queued" || task.status === "processing");
    liveState.textContent = running ? "(live)" : `(${page.total})`;
    taskList.replaceChildren(...page.tasks.map(taskRow));
    if (openUid) {
      const task = page.tasks.find((item) => item.uid === openUid);
      if (task && detail.dataset.status !== task.status) renderDetail(task);
    }
    schedule(running ? 1000 : 5000);
  }
  function schedule(delay) {
    clearTimeout(timer);
    if (visible) timer = setTimeout(refresh, delay);
  }
  function taskRow(task) {
    const thumb = h("img", { class: "thumb", alt: "", width: 48, height: 48 });
    if (task.thumbnails[0]) fileUrl(task.thumbnails[0]).then((url) => { thumb.src = url; }).catch(() => {});
    return h("li", { "data-uid": task.uid, "data-status": task.status },
      h("button", { type: "button", class: "task-row", onclick: () => openTask(task.uid), "aria-label": `Task ${task.uid} ${task.tool} ${task.status}` },
        thumb, h("span", { class: "mono" }, task.uid.slice(0, 8)), h("span", {}, task.tool),
        h("span", { class: `badge ${task.status}` }, task.status), h("span", { class: "muted" }, when(task.created_at))));
  }
  async function openTask(uid) {
    openUid = uid;
    try {
      renderDetail(await api(`/api/v1/tasks/${uid}`));
    } catch (error) {
      showError(null, error);
    }
  }
  function renderDetail(task) {
    detail.hidden = false;
    detail.dataset.status = task.status;
    detail.dataset.uid = task.uid;
    const pictures = h("div", { class: "gallery" });
    for (const key of task.result_files.filter((name) => /\.(png|jpe?g|webp)$/i.test(name))) {
      const img = h("img", { alt: key.split("/").slice(2).join("/"), class: "result-picture" });
      fileUrl(key).then((url) => { img.src = url; }).catch(() => {});
      pictures.append(h("figure", {}, img, h("figcaption", {}, h("a", { href: "#", onclick: async (event) => {
        event.preventDefault();
        const link = h("a", { href: await fileUrl(key), download: key.split("/").pop() });
        link.click();
      } }, key.split("/").slice(2).join("/")))));
    }
    detail.replaceChildren(...[
      h("h3", {}, `Task ${task.uid} `, h("span", { class: `badge ${task.status}`, id: "detail-status" }, task.status)),
      h("p", { class: "muted" }, `${task.tool} · created ${when(task.created_at)} · updated ${when(task.updated_at)}`),
      task.error ? h("p", { class: "status error" }, task.error) : null,
      task.status === "queued" || task.status === "processing" ? h("progress", { "aria-label": "Task running" }) : null,
      pictures,
      task.result_data ? h("details", { open: true }, h("summary", {}, "Result data"), h("pre", {}, JSON.stringify(task.result_data, null, 2))) : null,
      h("details", {}, h("summary", {}, "Parameters"), h("pre", {}, JSON.stringify(task.params, null, 2))),
      timelineOf(task)].filter(Boolean));
  }
  // the task's moments (submitted, queued, each attempt, its end) and the request id its logs carry
  function timelineOf(task) {
    const list = h("ol", { class: "timeline", id: "task-timeline", "aria-label": "Timeline" });
    const section = h("details", { open: true }, h("summary", {}, "Timeline"), list,
      task.request_id ? h("p", { class: "muted" }, "Request id ", h("code", {}, task.request_id), " (make logs ID=… shows its log lines)") : null);
    api(`/api/v1/tasks/${task.uid}/timeline`).then((timeline) => {
      const start = timeline.events.length ? Date.parse(timeline.events[0].at) : 0;
      list.replaceChildren(...timeline.events.map((entry) => h("li", { "data-event": entry.event },
        h("span", { class: "mono" }, `+${Date.parse(entry.at) - start} ms`), " ",
        h("span", { class: `badge ${entry.event}` }, entry.event),
        entry.step ? ` step ${entry.step}` : "", entry.attempt ? ` attempt ${entry.attempt}` : "",
        entry.detail ? h("span", { class: "muted" }, ` ${entry.detail}`) : "")));
    }).catch(() => list.replaceChildren(h("li", { class: "muted" }, "(timeline unavailable)")));
    return section;
  }

  // --- settings editor -----------------------------------------------------------------------
  async function renderSettings(tool) {
    const picker = h("select", { id: "settings-tool", "aria-label": "Tool" }, TOOLS.map((name) => h("option", { value: name, selected: name === tool }, name)));
    picker.addEventListener("change", () => renderSettings(picker.value));
    const [schema, values] = await Promise.all([formSchema(`/api/v1/match/${tool}`), settingsOf(tool)]);
    const params = paramFields(schema, values, `settings-${tool}`);
    const status = h("p", { class: "status", role: "status" });
    const save = async (body) => {
      try {
        await api(`/api/v1/settings/${tool}`, { method: "PUT", json: body });
        notify(`Settings of ${tool} saved`, "ok");
        renderSettings(tool);
        renderForm(toolPicker.querySelector("input:checked").value);
      } catch (error) {
        showError(status, error);
      }
    };
    const form = h("form", { id: "settings-form", novalidate: true }, h("label", {}, "Tool ", picker), params.element,
      h("div", { class: "row" }, h("button", { type: "submit" }, "Save"),
        h("button", { type: "button", class: "quiet", onclick: () => save({}) }, "Reset to built-in defaults"), status));
    form.addEventListener("submit", (event) => { event.preventDefault(); save(params.read()); });
    settingsArea.replaceChildren(form);
  }

  renderForm("template");
  renderSettings("template").catch((error) => showError(null, error));
  return {
    visible(shown) {
      visible = shown;
      if (shown) refresh(); else clearTimeout(timer);
    },
  };
}
