// Charts drawn as SVG here (no library): grouped bars per day, horizontal shares.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// rows: [{label, values: [a, b]}]; series: [{name, className}]
export function groupedBars(rows, series, { title, width = 720, height = 260 } = {}) {
  const margin = { top: 16, right: 12, bottom: 46, left: 40 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const max = Math.max(1, ...rows.flatMap((row) => row.values));
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  root.append(svg("title", {}, title));
  const y = (value) => margin.top + plotH - (value / top) * plotH;
  for (let tick = 0; tick <= top; tick += step) {
    root.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick), class: "grid" }));
    root.append(svg("text", { x: margin.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, String(tick)));
  }
  const band = plotW / Math.max(rows.length, 1);
  const barW = Math.max(2, (band * 0.8) / series.length);
  rows.forEach((row, index) => {
    const x0 = margin.left + index * band + band * 0.1;
    row.values.forEach((value, s) => {
      const bar = svg("rect", { x: x0 + s * barW, y: y(value), width: barW - 1, height: Math.max(0, margin.top + plotH - y(value)), class: `bar ${series[s].className}`, "data-value": value });
      bar.append(svg("title", {}, `${row.label}: ${value} ${series[s].name}`));
      root.append(bar);
    });
    const every = Math.ceil(rows.length / 10);
    if (index % every === 0) {
      root.append(svg("text", { x: x0 + band * 0.4, y: height - margin.bottom + 16, "text-anchor": "middle", class: "tick" }, row.label.slice(5)));
    }
  });
  series.forEach((item, s) => {
    const x = margin.left + s * 150;
    root.append(svg("rect", { x, y: height - 16, width: 12, height: 12, class: `bar ${item.className}` }));
    root.append(svg("text", { x: x + 18, y: height - 6, class: "legend" }, item.name));
  });
  return root;
}

// items: [{label, value (0..1), text}]
export function shareBars(items, { title, width = 360 } = {}) {
  const rowH = 26;
  const height = Math.max(rowH, items.length * rowH) + 4;
  const labelW = 120;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart share" });
  root.append(svg("title", {}, title));
  items.forEach((item, index) => {
    const y = index * rowH + 4;
    root.append(svg("text", { x: 0, y: y + 14, class: "tick" }, item.label));
    const bar = svg("rect", { x: labelW, y, width: Math.max(1, (width - labelW - 70) * item.value), height: rowH - 8, class: `bar label-${index % 6}` });
    bar.append(svg("title", {}, `${item.label}: ${item.text}`));
    root.append(bar);
    root.append(svg("text", { x: width - 64, y: y + 14, class: "tick" }, item.text));
  });
  return root;
}

function niceStep(max) {
  const raw = max / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 5, 10]) if (raw <= factor * power) return Math.max(1, factor * power);
  return Math.max(1, 10 * power);
}
