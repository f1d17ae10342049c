// glassbox sweep explorer: the runs of one sweep side by side. Pick a probe pair and the swept key for the
// x-axis; every chart and the runs table follow. The data blob is built by glassbox/report/explorer.py,
// sweep_page_data; the helpers (el, fmt, layout, whenPlotlyLoaded, ...) come from explorer_common.js.

const S = JSON.parse(document.getElementById("glassbox-data").textContent);
const PARAMETERS = "parameters";  // the x-axis choice that is no swept key: the model's size
const state = {pair: S.pairs.length ? S.pairs[0].id : null, x: S.axes[0] ?? PARAMETERS};
const pairLabel = Object.fromEntries(S.pairs.map((p) => [p.id, p.label]));  // id (as in the metric keys) -> 说 – 道

/** The x value of a configuration or a job on the chosen axis: a number where the key's values are numbers. */
function xValue(item) {
  if (state.x === PARAMETERS) return item.n_params;
  const value = item.values[state.x];
  return numericAxis() ? Number(value) : value;
}

function numericAxis() {
  return state.x === PARAMETERS || S.jobs.every((job) => Number.isFinite(Number(job.values[state.x])));
}

/** e.g. "model.n_embd=64": the other swept keys, which tell apart configurations that share an x value. */
function seriesOf(item) {
  return S.axes.filter((key) => key !== state.x).map((key) => `${key}=${item.values[key]}`).join(" ") || "all runs";
}

function xAxis() {
  const title = {text: state.x};
  if (state.x === PARAMETERS) return {type: "log", title};
  return numericAxis() ? {title} : {type: "category", title};
}

/** One line per series through its configurations' mean ± sd, and every complete run as a grey dot. */
function finalTraces(configValue, jobValue) {
  const series = {};
  for (const c of S.configurations) {
    const stat = configValue(c);
    if (stat && stat.mean !== null && c.n_params !== null) (series[seriesOf(c)] ??= []).push([xValue(c), stat]);
  }
  const traces = Object.entries(series).map(([name, points], n) => {
    points.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    return {x: points.map(([x]) => x), y: points.map(([, s]) => s.mean), name, mode: "lines+markers",
            error_y: {type: "data", array: points.map(([, s]) => s.sd ?? 0), visible: true},
            line: {color: COLOURS[n % COLOURS.length]},
            hovertemplate: "%{x}: %{y:.3f}<extra>%{fullData.name}</extra>"};
  });
  const complete = S.jobs.filter((job) => job.status === "complete" && jobValue(job) !== null);
  traces.push({x: complete.map(xValue), y: complete.map(jobValue), mode: "markers", name: "one run (seed)",
               marker: {color: "rgba(95,99,104,0.5)", size: 6}, hovertemplate: "%{text}: %{y:.3f}<extra></extra>",
               text: complete.map((job) => `job ${job.job}, seed ${job.seed}`)});
  return traces;
}

const finalZf = (job) => (job.zf[state.pair]?.length ? job.zf[state.pair].at(-1) : null);

function drawFinal() {
  if (!state.pair) return;
  const z = S.thresholds.z_min;
  Plotly.react("final-plot", finalTraces((c) => c.zf[state.pair], finalZf), layout({
    height: 340, xaxis: xAxis(), yaxis: {title: {text: `zf of ${esc(pairLabel[state.pair])}`}},
    legend: {orientation: "h", y: -0.25},
    shapes: z === undefined ? [] : [hline(z), hline(-z)],
  }), CONFIG);
}

function drawLoss() {
  Plotly.react("loss-plot", finalTraces((c) => c.loss, (job) => job.loss), layout({
    height: 340, xaxis: xAxis(), yaxis: {title: {text: "validation loss"}}, legend: {orientation: "h", y: -0.25},
  }), CONFIG);
}

/** Every run's zf against step (thin), each configuration's mean ± sd over seeds (bold, band). */
function drawCurves() {
  if (!state.pair) return;
  const colour = Object.fromEntries(S.configurations.map((c, n) => [c.label, COLOURS[n % COLOURS.length]]));
  const lastStep = Math.max(0, ...S.jobs.flatMap((job) => job.steps));
  const traces = [];
  for (const c of S.configurations) {
    const curve = c.curve, mean = curve.mean[state.pair], sd = curve.sd[state.pair];
    if (!mean || !curve.steps.length) continue;
    const xs = curve.steps.map(stepX);
    if (sd.every((v) => v !== null)) {  // one closed outline: out along the lower edge, back along the upper
      const lower = mean.map((m, i) => m - sd[i]), upper = mean.map((m, i) => m + sd[i]);
      traces.push({x: [...xs, ...xs.slice().reverse()], y: [...lower, ...upper.reverse()], fill: "toself",
                   mode: "lines", line: {width: 0}, fillcolor: colour[c.label], opacity: 0.15, hoverinfo: "skip",
                   showlegend: false, legendgroup: c.label});
    }
    traces.push({x: xs, y: mean, mode: "lines", name: c.label, legendgroup: c.label,
                 line: {color: colour[c.label], width: 3}, customdata: curve.steps,
                 hovertemplate: "step %{customdata}: mean %{y:.2f}<extra>%{fullData.name}</extra>"});
  }
  for (const job of S.jobs) {
    if (!job.steps.length) continue;
    traces.push({x: job.steps.map(stepX), y: job.zf[state.pair], mode: "lines", legendgroup: job.configuration,
                 showlegend: false, line: {color: colour[job.configuration], width: 1}, customdata: job.steps,
                 name: `job ${job.job} (seed ${job.seed})`,
                 hovertemplate: "step %{customdata}: %{y:.2f}<extra>%{fullData.name}</extra>"});
  }
  const z = S.thresholds.z_min;
  Plotly.react("curves-plot", traces, layout({
    height: 360, xaxis: stepAxis(lastStep, {title: {text: "training step (log scale)"}}),
    yaxis: {title: {text: `zf of ${esc(pairLabel[state.pair])}`}}, shapes: z === undefined ? [] : [hline(z), hline(-z)],
  }), CONFIG);
}

function drawJobs() {
  const pairs = S.pairs.map((p) => p.id);
  const head = headerRow(["job", "configuration", "seed", "status", "parameters", "step", "val loss",
                          ...pairs.map((id) => `zf ${pairLabel[id]}`)], 2);
  const rows = S.jobs.map((job) => el("tr", {"data-job": job.job},
    el("td", {class: "text"}, String(job.job)), el("td", {class: "text"}, job.configuration),
    el("td", {}, String(job.seed)),
    el("td", {}, job.status), el("td", {}, job.n_params === null ? "—" : job.n_params.toLocaleString("en")),
    el("td", {}, job.step ?? "—"), el("td", {}, fmt(job.loss, 3)),
    ...pairs.map((id) => el("td", {"data-pair": id, class: id === state.pair ? "chosen" : ""},
                            fmt(job.zf[id]?.at(-1) ?? null, 2, true)))));
  document.getElementById("jobs-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function drawAll() {
  drawFinal();
  drawLoss();
  drawCurves();
  drawJobs();
}

function setupControls() {
  const fill = (id, options, chosen, key, text = (o) => o) => {
    const select = document.getElementById(id);
    select.replaceChildren(...options.map((o) => el("option", {value: o}, text(o))));
    select.value = chosen;
    select.addEventListener("change", () => { state[key] = select.value; drawAll(); });
  };
  fill("pair", S.pairs.map((p) => p.id), state.pair, "pair", (id) => pairLabel[id]);
  fill("x-key", [...S.axes, PARAMETERS], state.x, "x");
  document.getElementById("sweep-label").textContent = `${S.n_jobs} runs, ${S.n_complete} complete`;
}

whenPlotlyLoaded(() => {
  setupControls();
  drawAll();
});
