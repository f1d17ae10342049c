// glassbox run explorer: every panel of one run, drawn for the snapshot chosen on the step slider.
// The data blob (built by glassbox/report/explorer.py, page_data) holds one entry per snapshot for all that
// changes with the step; show(i) redraws the step-dependent panels with Plotly.react, which only
// touches what changed. Text from the corpus goes into the page as text (textContent), never as HTML.
// The helpers (el, fmt, layout, whenPlotlyLoaded, ...) come from explorer_common.js, inlined before this.

const D = JSON.parse(document.getElementById("glassbox-data").textContent);
const N = D.steps.length;
const LAST_STEP = D.steps[N - 1];
const MARK = "#d93025";  // the slider's step, in every chart
let current = N - 1;     // the snapshot shown: the last (trained) one first
let timer = null;        // the play loop, while it runs

// ---------------------------------------------------------------- small helpers

/** The suffix of the i-th subplot's axes in a Plotly grid: "", "2", "3", ... */
const axis = (i) => (i === 0 ? "" : String(i + 1));

/** A subplot's title, as an annotation above it (plotly.js has no subplot titles). */
function subplotTitle(i, text) {
  return {text, showarrow: false, xref: `x${axis(i)} domain`, yref: `y${axis(i)} domain`, x: 0.5, y: 1,
          yanchor: "bottom", font: {size: 12}};
}

/** The vertical line at the slider's step in subplot i. */
function stepLine(i) {
  const x = stepX(D.steps[current]);
  return {type: "line", xref: `x${axis(i)}`, yref: `y${axis(i)} domain`, x0: x, x1: x, y0: 0, y1: 1,
          line: {color: MARK, width: 1, dash: "dot"}};
}

/** The bounds of a band as two dotted lines (one trace, broken by a gap), against step. */
function bounds(lower, upper, i, name, colour, showlegend) {
  const xs = D.steps.map(stepX);
  return {x: [...xs, null, ...xs], y: [...lower, null, ...upper], mode: "lines", hoverinfo: "skip",
          line: {color: colour, dash: "dot", width: 1.5}, name, legendgroup: name, showlegend,
          xaxis: `x${axis(i)}`, yaxis: `y${axis(i)}`};
}

/** A closed band between lower and upper (one trace, filled), against step. */
function band(lower, upper, i, name, colour, showlegend) {
  const xs = D.steps.map(stepX);
  return {x: [...xs, ...xs.slice().reverse()], y: [...lower, ...upper.slice().reverse()], fill: "toself",
          mode: "lines", fillcolor: colour, line: {width: 0}, hoverinfo: "skip", name, legendgroup: name, showlegend,
          xaxis: `x${axis(i)}`, yaxis: `y${axis(i)}`};
}

/** A line against step, with the slider's step marked by a dot. */
function curve(values, i, name, colour, extra = {}) {
  return [
    {x: D.steps.map(stepX), y: values, mode: "lines+markers", name, line: {color: colour, ...extra.line},
     marker: {size: 4}, customdata: D.steps, hovertemplate: `step %{customdata}: %{y:.4f}<extra>${esc(name)}</extra>`,
     xaxis: `x${axis(i)}`, yaxis: `y${axis(i)}`, showlegend: extra.showlegend ?? false, legendgroup: name},
    {x: [stepX(D.steps[current])], y: [values[current]], mode: "markers", marker: {color: MARK, size: 8},
     hoverinfo: "skip", showlegend: false, xaxis: `x${axis(i)}`, yaxis: `y${axis(i)}`},
  ];
}

/** The article's init and trained values as diamonds at the first and last step. */
function articlePoints(ref, i, showlegend) {
  const points = [["init", 0], ["trained", N - 1]].filter(([when]) => ref && ref[when] !== undefined);
  return {x: points.map(([, at]) => stepX(D.steps[at])), y: points.map(([when]) => ref[when]), mode: "markers",
          marker: {symbol: "diamond", size: 9, color: "#000"}, name: "article", legendgroup: "article", showlegend,
          text: points.map(([when]) => when), hovertemplate: "article, %{text}: %{y:.3f}<extra></extra>",
          xaxis: `x${axis(i)}`, yaxis: `y${axis(i)}`};
}

/** A horizontal legend in the top strip of the figure, above any subplot titles. */
const TOP_LEGEND = {orientation: "h", yref: "container", y: 1, yanchor: "top", x: 0};

/** n subplots in rows of `columns`, each with its own axes. */
function grid(n, columns) {
  return {rows: Math.ceil(n / columns), columns, pattern: "independent", xgap: 0.12, ygap: 0.3};
}

/** mean ± 2 sd as "lower … upper". */
const chanceRange = (mean, sd) => (mean === null || sd === null ? "—"
                                   : `${fmt(mean - 2 * sd, 2, true)} … ${fmt(mean + 2 * sd, 2, true)}`);


function verdictClass(v) {
  return {held: "held", "not yet": "not-yet", "did not": "did-not"}[v] || "";
}

const arrow = (expect) => ({up: "↑", down: "↓", none: "–"}[expect]);

// ---------------------------------------------------------------- the step bar

function setupStepBar() {
  const slider = document.getElementById("step");
  slider.max = N - 1;
  slider.value = current;
  slider.addEventListener("input", () => { stop(); show(Number(slider.value)); });
  const play = document.getElementById("play");
  play.addEventListener("click", () => (timer ? stop() : start()));
}

function start() {
  if (current === N - 1) show(0);
  document.getElementById("play").textContent = "❚❚ pause";
  timer = setInterval(() => (current < N - 1 ? show(current + 1) : stop()), 900);
}

function stop() {
  clearInterval(timer);
  timer = null;
  document.getElementById("play").textContent = "▶ play";
}

function drawStepLabel() {
  const loss = D.loss[current] === null ? "" : ` · val loss ${fmt(D.loss[current])}`;
  const label = document.getElementById("step-label");
  label.replaceChildren("step ", el("b", {id: "step-value"}, String(D.steps[current])),
                        ` (snapshot ${current + 1} of ${N})${loss}`);
  document.getElementById("step").value = current;
}

// ---------------------------------------------------------------- 1. embedding map

function mapExtent() {
  let extent = 0;
  for (const coords of D.map.coords) for (const v of coords) extent = Math.max(extent, Math.abs(v));
  return 1.1 * extent;
}

function drawMap() {
  if (!D.map) return;
  const m = D.map, coords = m.coords[current], norms = m.norms[current];
  const named = [...D.groups, ""];  // the probe groups, then characters that are only in pairs
  const names = {"": "in pairs only", null: "frequent characters"};
  const order = [null, ...named];   // frequent characters first, so the probes are drawn on top
  const traces = order.map((group) => {
    const rows = m.groups.map((g, r) => (g === group ? r : -1)).filter((r) => r >= 0);
    const probe = group !== null;
    const colour = !probe ? "#b0b4b8" : group === "" ? "#5f6368" : COLOURS[D.groups.indexOf(group) % COLOURS.length];
    return {x: rows.map((r) => coords[2 * r]), y: rows.map((r) => coords[2 * r + 1]),
            text: rows.map((r) => esc(m.chars[r])), customdata: rows.map((r) => [m.counts[r], norms[r]]),
            name: names[group] ?? group, mode: "markers+text", textposition: "top center", type: "scatter",
            marker: {size: probe ? 9 : 4, color: colour}, textfont: {size: probe ? 15 : 10, color: colour},
            hovertemplate: "<b>%{text}</b><br>count %{customdata[0]:,}<br>row norm %{customdata[1]:.3f}" +
                           "<extra>%{fullData.name}</extra>"};
  }).filter((t) => t.x.length);
  const explained = m.explained[current];
  const fixed = document.getElementById("same-scale").checked;
  const range = fixed ? [-mapExtent(), mapExtent()] : undefined;
  Plotly.react("map-plot", traces, layout({
    height: 480, margin: {l: 40, r: 10, t: 30, b: 30}, legend: {orientation: "h", y: -0.08},
    title: {text: `step ${D.steps[current]}: the two components explain ${pct(explained[0])} + ${pct(explained[1])}`,
            font: {size: 12}, x: 0.02, xanchor: "left"},
    xaxis: {range, autorange: !fixed, zeroline: false}, yaxis: {range, autorange: !fixed, zeroline: false,
                                                                 scaleanchor: "x"},
  }), CONFIG);
}

// ---------------------------------------------------------------- 2. probe pairs

function drawPairTable() {
  if (!D.pairs) return;
  const i = current;
  document.getElementById("global-chance").textContent = chanceRange(D.baseline.mean[i], D.baseline.sd[i]);
  // the values the slider's step shows, also as data-value: what tests and scripts read back
  const value = (key, x, digits, signed) => el("td", {"data-key": key, "data-value": x ?? ""}, fmt(x, digits, signed));
  const rows = D.pairs.map((p) => el("tr", {"data-pair": p.id},
    el("td", {class: "text pair"}, p.label), el("td", {class: "text"}, `${p.kind} ${arrow(p.expect)}`),
    value("cos", p.cos[i], 3, true), value("z", p.z[i], 2, true),
    el("td", {}, chanceRange(p.null_mean[i], p.null_sd[i])),
    value("zf", p.zf[i], 2, true),
    el("td", {"data-key": "p", "data-value": p.p[i] ?? ""}, fmtP(p.p[i], p.p_floor)), el("td", {class: verdictClass(p.verdict[i])}, p.verdict[i])));
  const head = headerRow(["pair", "kind", "cosine", "z", "matched chance", "zf", "p", "verdict"], 2);
  document.getElementById("pairs-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

/** zf of every pair against step, with the verdict's thresholds ±z_min. */
function drawZf() {
  if (!D.pairs) return;
  const traces = D.pairs.flatMap((p, n) => curve(p.zf, 0, p.label, COLOURS[n % COLOURS.length],
                                                   {line: {dash: KIND_DASH[p.kind]}, showlegend: true}));
  Plotly.react("zf-plot", traces, layout({
    height: 280, margin: {l: 45, r: 10, t: 30, b: 30}, xaxis: stepAxis(LAST_STEP), yaxis: {title: {text: "zf"}},
    title: {text: `zf against step; dashed: ±${D.thresholds.z_min} (with p ≤ ${D.thresholds.p_max}: held)`,
            font: {size: 12}, x: 0.02, xanchor: "left"},
    legend: {font: {size: 11}}, shapes: [hline(D.thresholds.z_min), hline(-D.thresholds.z_min), stepLine(0)],
  }), CONFIG);
}

function drawPairCurves() {
  if (!D.pairs) return;
  const base = D.baseline;
  const lower = (mean, sd) => mean.map((m, s) => m - 2 * sd[s]);
  const upper = (mean, sd) => mean.map((m, s) => m + 2 * sd[s]);
  const traces = [], extra = {grid: grid(D.pairs.length, Math.min(4, D.pairs.length)), annotations: [], shapes: []};
  D.pairs.forEach((p, i) => {
    const first = i === 0;  // one legend entry per kind of line
    traces.push(bounds(lower(base.mean, base.sd), upper(base.mean, base.sd), i, "global chance", "#80868b", first));
    if (p.null_mean.every((m) => m !== null)) {
      traces.push(band(lower(p.null_mean, p.null_sd), upper(p.null_mean, p.null_sd), i, "matched chance",
                       "rgba(26,115,232,0.22)", first));
    }
    traces.push(...curve(p.cos, i, "cosine", COLOURS[0], {line: {dash: KIND_DASH[p.kind]}, showlegend: first}));
    traces.push(articlePoints(p.ref, i, first));
    extra[`xaxis${axis(i)}`] = stepAxis(LAST_STEP);
    extra[`yaxis${axis(i)}`] = {zeroline: true, zerolinecolor: "#ccc"};
    extra.annotations.push(subplotTitle(i, `${esc(p.label)}  (${p.kind}, ${arrow(p.expect)})  ` +
                                           `cos ${fmt(p.cos[current], 2, true)}, zf ${fmt(p.zf[current], 1, true)}`));
    extra.shapes.push(stepLine(i));
  });
  Plotly.react("pairs-plot", traces, layout({height: 80 + 170 * extra.grid.rows, margin: {l: 45, r: 10, t: 55, b: 30},
                                             legend: TOP_LEGEND, ...extra}), CONFIG);
}

// ---------------------------------------------------------------- 3. embedding statistics

function drawEmbedding() {
  if (!D.embedding) return;
  const e = D.embedding, ref = e.ref;
  const article = (stat) => ({init: ref.init?.[stat], trained: ref.trained?.[stat]});
  const panels = [
    ["std of all entries", [["std", e.std]]],
    ["min and max entry", [["max", e.max], ["min", e.min]]],
    ["mean row L2 norm", [["l2_mean", e.l2_mean]]],
  ];
  const traces = [], extra = {grid: grid(4, 4), annotations: [], shapes: []};
  panels.forEach(([title, lines], i) => {
    lines.forEach(([stat, values], k) => {
      traces.push(...curve(values, i, stat, COLOURS[k]));
      traces.push(articlePoints(article(stat), i, i === 0 && k === 0));
    });
    extra.annotations.push(subplotTitle(i, `${title}: ${lines.map(([, v]) => fmt(v[current], 4)).join(" / ")}`));
  });
  traces.push(...curve(D.loss, 3, "validation loss", COLOURS[2]));
  extra.annotations.push(subplotTitle(3, `validation loss: ${fmt(D.loss[current], 3)}`));
  for (let i = 0; i < 4; i++) {
    extra[`xaxis${axis(i)}`] = stepAxis(LAST_STEP);
    extra.shapes.push(stepLine(i));
  }
  Plotly.react("embedding-plot", traces, layout({height: 260, margin: {l: 50, r: 10, t: 55, b: 30}, legend: TOP_LEGEND,
                                                 ...extra}), CONFIG);
}

// ---------------------------------------------------------------- 4. residual stream

/** Per prompt, its heading and the elements `make(n)` returns, created once and kept across steps. */
function perPrompt(target, prompts, make) {
  if (!target.dataset.built) {
    target.replaceChildren(...prompts.flatMap((p, n) => [el("h3", {}, `prompt “${p.text}”`), ...make(n)]));
    target.dataset.built = "yes";
  }
}

function drawResidual() {
  const prompts = D.prompts.filter((p) => p.residual);
  if (!prompts.length) return;
  perPrompt(document.getElementById("residual"), prompts, (n) => [
    el("div", {class: "scroll"}, el("table", {id: `residual-table-${n}`})), el("div", {id: `residual-plot-${n}`})]);
  const ref = D.residual_ref;
  prompts.forEach((p, n) => {
    const r = p.residual, i = current;
    const withRef = r.layers.some((layer) => ref[layer]);
    const article = (layer) => (ref[layer] ? ref[layer].map((x, k) => fmt(x, 4, k === 0)).join(" / ") : "—");
    const head = headerRow(["layer", "mean", "std", "max |x|", ...(withRef ? ["article: mean / std / max"] : [])]);
    const rows = r.layers.map((layer, l) => el("tr", {"data-layer": layer}, el("td", {class: "text"}, layer),
      el("td", {}, fmt(r.mean[i][l], 4, true)), el("td", {}, fmt(r.std[i][l], 4)), el("td", {}, fmt(r.max[i][l], 4)),
      ...(withRef ? [el("td", {}, article(layer))] : [])));
    document.getElementById(`residual-table-${n}`).replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    const bars = [["std", r.std[i], COLOURS[0]], ["max |x|", r.max[i], COLOURS[1]]].map(([name, y, colour]) => ({
      type: "bar", x: r.layers, y, name, marker: {color: colour},
      hovertemplate: `%{x}: %{y:.4f}<extra>${name}</extra>`}));
    if (withRef) {
      bars.push(...[[1, "article std", "#0b3d91"], [2, "article max |x|", "#8a4b00"]].map(([k, name, colour]) => ({
        x: r.layers, y: r.layers.map((layer) => (ref[layer] ? ref[layer][k] : null)), mode: "markers", name,
        marker: {symbol: "diamond", size: 9, color: colour}})));
    }
    Plotly.react(`residual-plot-${n}`, bars, layout({
      height: 240, barmode: "group", margin: {l: 55, r: 10, t: 10, b: 30}, legend: {orientation: "h", y: 1.12},
      xaxis: {type: "category"}, yaxis: {type: "log", dtick: 1, title: {text: "log scale"}}}), CONFIG);
  });
}

// ---------------------------------------------------------------- 5. attention

function drawAttention() {
  const prompts = D.prompts.filter((p) => p.attention);
  if (!prompts.length) return;
  perPrompt(document.getElementById("attention"), prompts, (n) => [el("div", {id: `attention-plot-${n}`})]);
  prompts.forEach((p, n) => {
    const pattern = p.attention[current];  // [layer][head][query][key]
    const layers = pattern.length, heads = pattern[0].length, T = p.tokens.length;
    const positions = [...Array(T).keys()];
    const ticks = {tickvals: positions, ticktext: p.tokens.map(esc), tickfont: {size: 13}, showgrid: false,
                   zeroline: false};
    const traces = [], extra = {grid: {rows: layers, columns: heads, pattern: "independent", xgap: 0.06, ygap: 0.3},
                                annotations: []};
    pattern.forEach((byHead, layer) => byHead.forEach((weights, head) => {
      const i = layer * heads + head;
      traces.push({type: "heatmap", x: positions, y: positions, zmin: 0, zmax: 1, colorscale: "Viridis",
                   z: weights.map((row, q) => row.map((w, k) => (k > q ? null : w))),  // the future: no cell
                   showscale: i === 0, colorbar: {title: {text: "weight"}, len: 0.6, thickness: 12},
                   texttemplate: T <= 8 ? "%{z:.2f}" : "", textfont: {size: 10},
                   customdata: weights.map((row, q) => row.map((_, k) => [p.tokens[q], p.tokens[k]])),
                   hovertemplate: "query %{customdata[0]} → key %{customdata[1]}: %{z:.3f}<extra></extra>",
                   xaxis: `x${axis(i)}`, yaxis: `y${axis(i)}`});
      extra[`xaxis${axis(i)}`] = {...ticks};
      extra[`yaxis${axis(i)}`] = {...ticks, autorange: "reversed"};
      extra.annotations.push(subplotTitle(i, `layer ${layer} · head ${head}`));
    }));
    Plotly.react(`attention-plot-${n}`, traces,
                 layout({height: 60 + 175 * layers, plot_bgcolor: "#d9d9d9", margin: {l: 40, r: 10, t: 30, b: 30},
                         ...extra}), CONFIG);
  });
}

// ---------------------------------------------------------------- 6. next character and logit lens

function drawNext() {
  const prompts = D.prompts.filter((p) => p.next || p.lens);
  if (!prompts.length) return;
  perPrompt(document.getElementById("next"), prompts, (n) => [
    el("div", {id: `next-plot-${n}`}), el("div", {id: `next-text-${n}`}),
    el("div", {class: "scroll"}, el("table", {id: `lens-table-${n}`}))]);
  prompts.forEach((p, n) => {
    const text = document.getElementById(`next-text-${n}`);
    text.replaceChildren();
    if (p.next) {
      const [chars, probs] = p.next[current];
      Plotly.react(`next-plot-${n}`, [{
        type: "bar", orientation: "h", x: probs, y: chars.map(esc), marker: {color: COLOURS[0]},
        text: probs.map(pct), textposition: "auto", hovertemplate: "%{y}: %{x:.2%}<extra></extra>"}],
        layout({height: 50 + 22 * chars.length, margin: {l: 40, r: 10, t: 10, b: 30},
                xaxis: {tickformat: ".2~%", rangemode: "tozero"},
                yaxis: {type: "category", autorange: "reversed", tickfont: {size: 14}}}), CONFIG);
      const ref = D.next_ref;
      if (ref && ref.prompt === p.text) {
        const what = `article: “${ref.char}” at ${pct(ref.prob)} (temperature ${ref.temperature})`;
        text.append(el("p", {class: "note"}, what));
      }
      text.append(el("p", {class: "note"}, "sample at this step:"), el("div", {class: "sample"}, p.sample[current]));
    }
    if (p.lens) {
      const top = p.lens.top[current];
      const head = headerRow(["logit lens", ...top[0][0].map((_, k) => `#${k + 1}`)]);
      const rows = p.lens.layers.map((layer, l) => el("tr", {"data-layer": layer}, el("td", {class: "text"}, layer),
        ...top[l][0].map((c, k) => el("td", {style: `background: rgba(26,115,232,${(0.6 * top[l][1][k]).toFixed(3)})`},
                                      el("b", {}, c), ` ${pct(top[l][1][k])}`))));
      document.getElementById(`lens-table-${n}`).replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    }
  });
}

// ---------------------------------------------------------------- 7. mechanisms

/** The top of a head role's colour scale: its largest score (or chance) at any step, so colours compare across steps. */
const HEAD_SCALE = (D.heads?.roles ?? []).map((role) =>
  Math.max(...role.scores.flat(2).concat(role.chance).filter((v) => v !== null)));

/** Per head role a layers × heads heatmap at the slider's step, side by side, each with its own colour bar. */
function drawHeads() {
  if (!D.heads) return;
  const h = D.heads, width = 1 / h.roles.length;
  const heads = [...Array(h.n_head).keys()].map((k) => `H${k}`);
  const traces = [], extra = {annotations: []};
  h.roles.forEach((role, i) => {
    const left = i * width, right = left + width - 0.075;  // the rest of its width: the colour bar
    const chance = role.chance[current];
    traces.push({type: "heatmap", x: heads, y: h.layers, z: role.scores[current], zmin: 0, zmax: HEAD_SCALE[i],
                 colorscale: "Viridis", texttemplate: "%{z:.3f}", textfont: {size: 10},
                 colorbar: {x: right + 0.005, xanchor: "left", thickness: 10, len: 1, tickfont: {size: 10}},
                 hovertemplate: `%{y}%{x}: %{z:.4f} (chance ${fmt(chance, 4)})<extra>${esc(role.label)}</extra>`,
                 xaxis: `x${axis(i)}`, yaxis: `y${axis(i)}`});
    extra[`xaxis${axis(i)}`] = {domain: [left, right], anchor: `y${axis(i)}`, type: "category"};
    extra[`yaxis${axis(i)}`] = {anchor: `x${axis(i)}`, type: "category", autorange: "reversed"};
    extra.annotations.push(subplotTitle(i, `${esc(role.label)}, chance ${fmt(chance, 3)}` +
                                           (role.verdict ? `<br>${esc(role.verdict)}` : "")));
  });
  Plotly.react("heads-plot", traces, layout({height: 90 + 45 * h.layers.length, margin: {l: 40, r: 10, t: 55, b: 30},
                                             ...extra}), CONFIG);
  const rule = h.roles.find((role) => role.rule)?.rule;  // the same for every role
  document.getElementById("heads-rule").textContent = rule ? `Held: ${rule}.` : "";
}

/** The ICL score and the repeated-segment score against step, each with its verdict and what "held" asks. */
function drawIcl() {
  if (!D.icl) return;
  const traces = [], extra = {grid: grid(D.icl.length, 2), annotations: [], shapes: []};
  D.icl.forEach((score, i) => {
    traces.push(...curve(score.values, i, score.label, COLOURS[i]));
    extra[`xaxis${axis(i)}`] = stepAxis(LAST_STEP);
    extra[`yaxis${axis(i)}`] = {zeroline: true, zerolinecolor: "#999", title: {text: "nats"}};
    const verdict = score.verdict ? `<br>${esc(score.verdict)} (held: ${esc(score.rule)})` : "";
    extra.annotations.push(subplotTitle(i, `${esc(score.label)}: ${fmt(score.values[current], 3, true)}${verdict}`));
    extra.shapes.push(stepLine(i));
  });
  Plotly.react("icl-plot", traces, layout({height: 300, margin: {l: 50, r: 10, t: 55, b: 30}, ...extra}), CONFIG);
}

/** A bar chart against the layers at the slider's step, on a fixed 0 … 1 scale. */
function layerBars(id, title, traces) {
  Plotly.react(id, traces, layout({
    height: 300, barmode: "group", margin: {l: 50, r: 10, t: 30, b: 30}, legend: {orientation: "h", y: -0.12},
    title: {text: title, font: {size: 12}, x: 0.02, xanchor: "left"},
    xaxis: {type: "category"}, yaxis: {range: [0, 1.05]}}), CONFIG);
}

function drawLayerProbe() {
  if (!D.layer_probe) return;
  const probe = D.layer_probe, i = current;
  const bars = [["probe", probe.accuracy[i], COLOURS[0]], ["control task", probe.control[i], "#b0b4b8"]].map(
    ([name, y, colour]) => ({type: "bar", x: probe.layers, y, name, marker: {color: colour},
                             hovertemplate: `%{x}: %{y:.3f}<extra>${name}</extra>`}));
  bars.push({x: probe.layers, y: probe.layers.map(() => probe.majority[i]), mode: "lines", name: "majority class",
             line: {color: "#5f6368", dash: "dash"}, hovertemplate: "majority class: %{y:.3f}<extra></extra>"});
  layerBars("layer-probe-plot", `“${esc(probe.property)}” at step ${D.steps[i]}: held-out accuracy ` +
                                `(majority class ${fmt(probe.majority[i], 3)})`, bars);
}

function drawSettling() {
  if (!D.settling) return;
  const cka = D.settling.cka[current];
  layerBars("settling-plot", `linear CKA, step ${D.steps[current]} vs step ${D.settling.final_step}`, [
    {type: "bar", x: D.settling.layers, y: cka, marker: {color: COLOURS[2]}, text: cka.map((v) => fmt(v, 2)),
     textposition: "auto", hovertemplate: "%{x}: %{y:.3f}<extra>CKA</extra>"}]);
}

// ---------------------------------------------------------------- 8. claims and the run

function drawClaims() {
  const head = headerRow(["claim", "kind", "expected", "article, init", "article, trained", "this run", "z (global)",
                          "zf (matched)", "p", "verdict", "first held"], 2);
  const rows = D.claims.map((c) => el("tr", {},
    el("td", {class: "text"}, c.label), el("td", {class: "text"}, c.kind), el("td", {}, arrow(c.expect)),
    el("td", {}, fmt(c.article.init, 3, true)), el("td", {}, fmt(c.article.trained, 3, true)),
    el("td", {}, fmt(c.value, 3, true)), el("td", {}, fmt(c.z, 2, true)), el("td", {}, fmt(c.zf, 2, true)),
    el("td", {}, fmtP(c.p, c.p_floor)), el("td", {class: verdictClass(c.verdict)}, c.verdict),
    el("td", {}, c.first_held === null ? "—" : `step ${c.first_held}`)));
  document.getElementById("claims-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function drawRun() {
  const rows = D.info.map(([label, value]) => el("tr", {}, el("th", {class: "text"}, label),
                                                  el("td", {class: "text"}, value)));
  document.getElementById("run-table").replaceChildren(...rows);
  if (D.config) document.getElementById("config-text").textContent = D.config;
  else document.getElementById("config").remove();
}

// ---------------------------------------------------------------- wiring

/** Panels with nothing to show (their suite did not run) say so, once, in place of their charts. */
function noteMissing() {
  const noPrompt = (key) => !D.prompts.some((p) => p[key]);
  const notes = [
    [!D.map, "map-plot", "No embedding map in this analysis: analyse the run again (make analyze) to add one."],
    [!D.pairs, "pairs-table", "No probe pairs: the embeddings suite did not run, or the corpus lists none."],
    [!D.pairs, "pairs-plot", "No probe pairs to follow."],
    [!D.embedding, "embedding-plot", "The embeddings suite did not run."],
    [noPrompt("residual"), "residual", "The activations suite did not run."],
    [noPrompt("next") && noPrompt("lens"), "next", "Neither the predictions nor the logit_lens suite ran."],
    [noPrompt("attention"), "attention", "The attention suite did not run."],
    [!D.heads, "heads-plot", "No head scores in this analysis: the embeddings suite did not run, or the run was " +
                             "analysed before glassbox measured head roles (make analyze adds them)."],
    [!D.icl, "icl-plot", "No in-context-learning scores in this analysis: the embeddings suite did not run, or " +
                         "the run was analysed before glassbox measured them (make analyze adds them)."],
    [!D.layer_probe, "layer-probe-plot", "The linear_probes suite did not run."],
    [!D.settling, "settling-plot", "The layer_settling suite did not run."],
    [!D.claims.length, "claims-table", "No claims: the embeddings suite did not run."],
  ];
  for (const [absent, id, text] of notes) {
    if (absent) document.getElementById(id).replaceWith(el("p", {class: "missing"}, text));
  }
}

/** Show snapshot i in every panel that follows the slider. */
function show(i) {
  current = i;
  drawStepLabel();
  drawMap();
  drawPairTable();
  drawZf();
  drawPairCurves();
  drawEmbedding();
  drawResidual();
  drawAttention();
  drawNext();
  drawHeads();
  drawIcl();
  drawLayerProbe();
  drawSettling();
}

noteMissing();
if (D.claims.length) drawClaims();
drawRun();
whenPlotlyLoaded(() => {
  setupStepBar();
  document.getElementById("same-scale").addEventListener("change", drawMap);
  show(current);
});
