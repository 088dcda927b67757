// Inspection: a batch inspected with progress, annotated results; the dashboard over the data API.
import { api, h, showError } from "./api.js";
import { groupedBars, shareBars } from "./chart.js";

const BATCH = 8;
const iso = (date) => date.toISOString().slice(0, 10);

export function mountInspection(root) {
  const input = h("input", { id: "inspect-files", type: "file", multiple: true, accept: "image/*" });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Images inspected" });
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Inspect");
  const results = h("div", { id: "inspect-results", class: "gallery" });
  const form = h("form", { id: "inspect-form", class: "card" },
    h("label", { for: "inspect-files" }, "Images of steel surfaces "), input,
    h("div", { class: "row" }, button, progress, status));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = [...input.files];
    if (!files.length) { status.className = "status error"; status.textContent = "Choose at least one image"; return; }
    button.disabled = true;
    progress.hidden = false;
    progress.max = files.length;
    progress.value = 0;
    let failed = 0;
    let defects = 0;
    for (let start = 0; start < files.length; start += BATCH) {
      const batch = files.slice(start, start + BATCH);
      status.className = "status";
      status.textContent = `Inspecting ${start + 1}-${start + batch.length} of ${files.length}...`;
      const body = new FormData();
      for (const file of batch) body.append("images", file);
      let entries;
      try {
        entries = await api("/api/detect", { method: "POST", form: body });
      } catch (error) {
        entries = Array.isArray(error.body?.results) ? error.body.results : batch.map((file) => ({ name: file.name, error: error.message }));
        if (!error.body?.results) showError(null, error);
      }
      for (const entry of entries) {
        if (entry.error) {
          failed += 1;
          results.prepend(h("figure", { class: "result failed" }, h("figcaption", {}, h("strong", {}, entry.name), h("span", { class: "error" }, ` ${entry.error}${entry.details ? `: ${entry.details}` : ""}`))));
          continue;
        }
        defects += entry.defect_count;
        results.prepend(h("figure", { class: "result", "data-fig-id": entry.figId },
          h("img", { src: `data:image/png;base64,${entry.result_image}`, alt: `${entry.name}: ${entry.defect_count} defects, class ${entry.labels}` }),
          h("figcaption", {}, h("strong", {}, entry.name), ` ${entry.labels} (${Number(entry.dice).toFixed(2)}) · `,
            h("span", { class: "badge defects-count" }, `${entry.defect_count} defect${entry.defect_count === 1 ? "" : "s"}`))));
      }
      progress.value += batch.length;
    }
    status.className = failed ? "status error" : "status ok";
    status.textContent = `${files.length - failed} of ${files.length} inspected, ${defects} defect(s)${failed ? `, ${failed} failed` : ""}`;
    button.disabled = false;
    refreshDashboard();
  });

  // --- dashboard -----------------------------------------------------------------------------
  const today = new Date();
  const start = h("input", { id: "stat-start", type: "date", value: iso(new Date(today.getTime() - 14 * 86400000)) });
  const end = h("input", { id: "stat-end", type: "date", value: iso(today) });
  const chart = h("div", { id: "day-chart", class: "chart-box" });
  const shares = h("div", { id: "label-shares", class: "chart-box" });
  const summary = h("div", { id: "analysis-summary" });
  const recent = h("div", { id: "recent-records", class: "scroll" });
  const dashboardForm = h("form", { class: "row", id: "stat-form" },
    h("label", { for: "stat-start" }, "From ", start), h("label", { for: "stat-end" }, "to ", end), h("button", { type: "submit" }, "Show"));
  dashboardForm.addEventListener("submit", (event) => { event.preventDefault(); refreshDashboard(); });

  const search = { name: h("input", { id: "search-name", type: "search" }), num: h("input", { id: "search-num", type: "number", min: 0 }),
    start: h("input", { id: "search-start", type: "date" }), end: h("input", { id: "search-end", type: "date" }) };
  const searchResults = h("div", { id: "search-results", class: "scroll" });
  const pager = h("div", { class: "row", id: "search-pager" });
  let page = 1;
  const searchForm = h("form", { id: "search-form", class: "fields" },
    h("label", { for: "search-name" }, "Name contains ", search.name), h("label", { for: "search-num" }, "Defects ", search.num),
    h("label", { for: "search-start" }, "From ", search.start), h("label", { for: "search-end" }, "To ", search.end),
    h("button", { type: "submit" }, "Search"));
  searchForm.addEventListener("submit", (event) => { event.preventDefault(); page = 1; runSearch(); });

  root.append(h("h2", { id: "inspection-title" }, "Inspection"), form, results,
    h("h3", {}, "Dashboard"), dashboardForm,
    h("div", { class: "columns" }, h("div", { class: "card" }, h("h4", {}, "Records and defects per day"), chart),
      h("div", { class: "card" }, h("h4", {}, "Share by class"), shares)),
    h("div", { class: "card" }, h("h4", {}, "Analysis"), summary),
    h("div", { class: "card" }, h("h4", {}, "Recent records"), recent),
    h("div", { class: "card" }, h("h4", {}, "Search"), searchForm, searchResults, pager));

  async function refreshDashboard() {
    try {
      const [days, analysis, latest] = await Promise.all([
        api("/api/data/statByDate", { query: { startDate: start.value, endDate: end.value } }),
        api("/api/data/analysis", { query: { limit: 500 } }),
        api("/api/data/getRecent", { query: { limit: 10 } }),
      ]);
      chart.replaceChildren(groupedBars(days.map((day) => ({ label: day.stat_date, values: [day.record_count, day.total_num] })),
        [{ name: "records", className: "records" }, { name: "defects", className: "defects" }],
        { title: `Records and defects per day, ${start.value} to ${end.value}` }));
      chart.dataset.records = days.reduce((sum, day) => sum + day.record_count, 0);
      const byLabel = analysis.by_label || [];
      shares.replaceChildren(byLabel.length
        ? shareBars(byLabel.map((item) => ({ label: item.label, value: item.share, text: `${Math.round(item.share * 100)}% (${item.records})` })), { title: "Share of records by class" })
        : h("p", { class: "muted" }, "No records yet"));
      summary.replaceChildren(...[
        h("dl", { class: "stats" },
          stat("Records", analysis.records), stat("Defects", analysis.defects),
          stat("Defect rate", analysis.defect_rate === null || analysis.defect_rate === undefined ? "–" : `${Math.round(analysis.defect_rate * 100)}%`),
          stat("Per record", analysis.defects_per_record ?? "–"), stat("Mean confidence", analysis.mean_dice ?? "–"),
          stat("Trend", analysis.trend?.direction ?? "–")),
        h("p", {}, analysis.summary || ""),
        analysis.narrative ? h("p", { class: "narrative" }, analysis.narrative) : null].filter(Boolean));
      recent.replaceChildren(recordTable(latest, "recent-table"));
    } catch (error) {
      showError(null, error);
    }
  }

  async function runSearch() {
    try {
      const answer = await api("/api/data/search", { query: { name: search.name.value, num: search.num.value, startDate: search.start.value, endDate: search.end.value, page, limit: 10 } });
      searchResults.replaceChildren(recordTable(answer.data, "search-table"));
      const pages = Math.max(1, Math.ceil(answer.total / 10));
      pager.replaceChildren(
        h("button", { type: "button", class: "quiet", disabled: page <= 1, onclick: () => { page -= 1; runSearch(); } }, "← Previous"),
        h("span", { id: "search-page" }, `Page ${page} of ${pages} (${answer.total} records)`),
        h("button", { type: "button", class: "quiet", disabled: page >= pages, onclick: () => { page += 1; runSearch(); } }, "Next →"));
    } catch (error) {
      showError(null, error);
    }
  }

  let loaded = false;
  return {
    visible(shown) {
      if (shown && !loaded) { loaded = true; refreshDashboard(); runSearch(); }
    },
  };
}

function stat(name, value) {
  return h("div", {}, h("dt", {}, name), h("dd", {}, String(value)));
}

function recordTable(records, id) {
  if (!records.length) return h("p", { class: "muted" }, "No records");
  return h("table", { id },
    h("thead", {}, h("tr", {}, ["#", "Name", "Date", "Time", "Class", "Defects", "Confidence"].map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, records.map((record) => h("tr", {},
      h("td", {}, record.figId), h("td", {}, record.name), h("td", {}, record.date), h("td", {}, record.time),
      h("td", {}, record.label), h("td", {}, record.num), h("td", {}, record.dice === null ? "" : Number(record.dice).toFixed(3))))));
}
