// Faces: drop photos (or a video), before/after side by side, faces counted, the result downloadable.
import { ApiError, api, fileUrl, h, showError, submitTask } from "./api.js";

const VIDEO_TYPES = /^video\//;

export function mountFaces(root) {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Photos done" });
  const results = h("div", { class: "results", id: "face-results" });
  const input = h("input", { id: "face-files", type: "file", multiple: true, accept: "image/*,video/*" });
  const mode = h("select", { id: "face-mode", name: "mode" },
    ["blur", "pixelate", "solid"].map((value) => h("option", { value }, value)));
  const shape = h("select", { id: "face-shape", name: "shape" },
    ["ellipse", "rectangle"].map((value) => h("option", { value }, value)));
  const margin = h("input", { id: "face-margin", type: "range", min: 0, max: 1, step: 0.05, value: 0.3 });
  const marginValue = h("output", { for: "face-margin" }, "0.3");
  margin.addEventListener("input", () => { marginValue.textContent = margin.value; });
  const boxes = h("input", { id: "face-boxes", type: "checkbox", checked: true });
  // what to hide: faces alone (the default: no hide field sent), text, numbers (runs of >= 4 digits)
  const hideBoxes = ["faces", "text", "numbers"].map((value) =>
    h("input", { id: `face-hide-${value}`, type: "checkbox", name: "hide", value, checked: value === "faces" }));
  const hideValue = () => {
    const names = hideBoxes.filter((box) => box.checked).map((box) => box.value);
    return names.length === 1 && names[0] === "faces" ? null : names.join(",") || "faces";
  };
  const button = h("button", { type: "submit" }, "Anonymize");
  const drop = h("div", { class: "drop", tabindex: 0, role: "button", "aria-describedby": "face-drop-help",
    onclick: () => input.click(),
    onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); } } },
  h("strong", {}, "Drop photos or a video here"), h("span", { id: "face-drop-help" }, " or press to choose files"));
  let chosen = [];
  const choose = (files) => {
    chosen = [...files];
    drop.querySelector("strong").textContent = chosen.length ? `${chosen.length} file(s): ${chosen.map((f) => f.name).join(", ")}` : "Drop photos or a video here";
  };
  input.addEventListener("change", () => choose(input.files));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); choose(event.dataTransfer.files); });

  const form = h("form", { id: "face-form", class: "card" },
    h("label", { for: "face-files", class: "visually-hidden" }, "Photos or video"), input, drop,
    h("div", { class: "fields" },
      h("label", {}, "Mode ", mode),
      h("label", {}, "Shape ", shape),
      h("label", {}, "Strength (margin) ", margin, marginValue),
      h("label", { class: "check" }, boxes, " Draw boxes"),
      h("fieldset", { class: "check" }, h("legend", {}, "Hide"),
        ...hideBoxes.map((box) => h("label", { class: "check" }, box, ` ${box.value}`)))),
    h("div", { class: "row" }, button, progress, status));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen.length) { status.textContent = "Choose at least one photo"; status.className = "status error"; return; }
    button.disabled = true;
    progress.hidden = false;
    progress.max = chosen.length;
    progress.value = 0;
    let faces = 0;
    let failed = 0;
    for (const file of chosen) {
      status.className = "status";
      status.textContent = `Working on ${file.name} (${progress.value + 1} of ${chosen.length})...`;
      try {
        const options = { mode: mode.value, shape: shape.value, margin: margin.value };
        if (hideValue()) options.hide = hideValue();
        faces += VIDEO_TYPES.test(file.type) ? await anonymizeVideo(file, results, status, options) : await anonymizePhoto(file, results, { ...options, draw_boxes: boxes.checked });
      } catch (error) {
        failed += 1;
        results.prepend(h("article", { class: "result failed" }, h("h3", {}, file.name),
          h("p", { class: "error" }, error instanceof ApiError ? `${error.status ? `${error.status}: ` : ""}${error.message}` : String(error))));
        showError(null, error);
      }
      progress.value += 1;
    }
    status.className = failed ? "status error" : "status ok";
    status.textContent = `${chosen.length - failed} of ${chosen.length} done, ${faces} face(s) hidden${failed ? `, ${failed} failed` : ""}`;
    button.disabled = false;
  });

  root.append(h("h2", { id: "faces-title" }, "Faces"),
    h("p", {}, "Every face found is hidden; nothing but the pixels is kept (no EXIF, no GPS)."), form, results);
  return {};
}

async function anonymizePhoto(file, results, options) {
  const form = new FormData();
  form.append("image", file);
  for (const [name, value] of Object.entries(options)) form.append(name, String(value));
  const response = await api("/process", { method: "POST", form, raw: true });
  const count = Number(response.headers.get("X-Faces-Count") || 0);
  const textCount = response.headers.get("X-Text-Count");
  const blob = await response.blob();
  const after = URL.createObjectURL(blob);
  const before = URL.createObjectURL(file);
  const extension = blob.type === "image/png" ? "png" : blob.type === "image/webp" ? "webp" : "jpg";
  const name = `${file.name.replace(/\.[^.]+$/, "")}-anonymized.${extension}`;
  results.prepend(h("article", { class: "result", "data-faces": count },
    h("h3", {}, file.name, " ", h("span", { class: "badge faces-count" }, `${count} face${count === 1 ? "" : "s"}`),
      textCount === null ? "" : h("span", { class: "badge text-count" }, ` ${textCount} text region${textCount === "1" ? "" : "s"}`)),
    h("div", { class: "pair" },
      h("figure", {}, h("img", { src: before, alt: `${file.name} before` }), h("figcaption", {}, "Before")),
      h("figure", {}, h("img", { src: after, alt: `${file.name} with faces hidden` }), h("figcaption", {}, "After"))),
    h("a", { href: after, download: name, class: "button" }, `Download ${name}`)));
  return count;
}

async function anonymizeVideo(file, results, status, options) {
  let task = await submitTask("/api/v1/faces/video", [["video", file]], options);
  const line = h("p", { class: "status" }, `${file.name}: ${task.status}`);
  const card = h("article", { class: "result" }, h("h3", {}, file.name), line);
  results.prepend(card);
  while (task.status !== "done" && task.status !== "error") {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    task = await api(`/api/v1/tasks/${task.uid}`);
    const data = task.result_data || {};
    line.textContent = `${file.name}: ${task.status}${data.frames_total ? ` (${data.frames_done} of ${data.frames_total} frames)` : ""}`;
    status.textContent = line.textContent;
  }
  if (task.status === "error") throw new ApiError(0, task.error || "the video task failed");
  for (const key of task.result_files) {
    const url = await fileUrl(key);
    const name = key.split("/").pop();
    if (/\.(mp4|webm|mov)$/i.test(name)) card.append(h("video", { src: url, controls: true, "aria-label": `${name}` }));
    card.append(h("a", { href: url, download: name, class: "button" }, `Download ${name}`));
  }
  card.querySelector("h3").append(" ", h("span", { class: "badge faces-count" }, `up to ${task.result_data?.faces_max ?? 0} faces a frame`));
  return Number(task.result_data?.faces_max ?? 0);
}
