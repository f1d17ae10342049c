// glassbox explorer pages, the helpers both pages share: small DOM and number helpers, Plotly defaults,
// and loadPlotly(). plotly.js comes inlined gzip-compressed and base64-encoded; loadPlotly() unpacks it with the
// browser's own DecompressionStream and runs it, before a page draws anything.
"use strict";

const FONT = getComputedStyle(document.body).fontFamily;
const CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
const COLOURS = ["#1a73e8", "#e8710a", "#188038", "#d93025", "#9334e6", "#12b5cb", "#e52592", "#795548"];
const KIND_DASH = {within: "solid", cross: "dash", other: "dot"};

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

/** x formatted with `digits` decimals, "+" on positives when signed; "—" when missing. */
function fmt(x, digits = 3, signed = false) {
  if (x === null || x === undefined) return "—";
  return (signed && x > 0 ? "+" : "") + x.toFixed(digits);
}

/** A permutation p-value, never "0.000": at the smallest p its null gives (floor, 1/(n+1)) or below 0.0005
 * it reads as a bound rounded up to three decimals ("< 0.001"), as report/markdown.py p_text writes it. */
function fmtP(p, floor = null) {
  if (p === null || p === undefined) return "—";
  if ((floor === null || p > floor * (1 + 1e-9)) && p >= 0.0005) return p.toFixed(3);
  const bound = Math.max(Math.ceil(p * 1000 - 1e-9) / 1000, 0.001);
  return (p < bound ? "< " : "≤ ") + bound.toFixed(3);
}

const pct = (p) => (p === null ? "—" : (100 * p).toFixed(1) + " %");

/** Text for Plotly labels, which read a few HTML tags: escape the characters that start them. */
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Training steps on a log axis that still shows step 0: x = log10(1 + step). */
const stepX = (step) => Math.log10(1 + step);

/** A step axis up to lastStep, ticks at 0, 1, 3, 10, 30, ... */
function stepAxis(lastStep, extra = {}) {
  const ticks = [0];
  for (let t = 1; t <= lastStep; t *= 10) ticks.push(...[t, 3 * t].filter((v) => v <= lastStep));
  return {tickvals: ticks.map(stepX), ticktext: ticks.map(String), zeroline: false, ...extra};
}

function layout(extra = {}) {
  return {font: {family: FONT, size: 12}, margin: {l: 50, r: 10, t: 30, b: 40}, hovermode: "closest",
          plot_bgcolor: "#fff", paper_bgcolor: "#fff", ...extra};
}

/** A header row; the first `texts` columns are left-aligned text. */
function headerRow(names, texts = 1) {
  return el("tr", {}, ...names.map((name, c) => el("th", c < texts ? {class: "text"} : {}, name)));
}

/** A horizontal dashed line across the plot at y (a threshold). */
const hline = (y) => ({type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y,
                       line: {color: "#80868b", dash: "dash"}});

/** Unpack the inlined plotly.js (base64 of gzip) with the browser's DecompressionStream and run it. */
async function loadPlotly() {
  const packed = atob(document.getElementById("plotly-js").textContent);
  const bytes = Uint8Array.from(packed, (c) => c.charCodeAt(0));
  const unpacked = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  document.head.append(el("script", {}, await new Response(unpacked).text()));
}

/** Load plotly.js, then draw(); a browser that cannot unpack it gets a sentence instead of charts. */
function whenPlotlyLoaded(draw) {
  loadPlotly().then(draw, (error) => {
    document.querySelector("main").prepend(el("p", {class: "missing"}, "The charts need a browser that can " +
      `unpack gzip (DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 or later): ${error}`));
  });
}
