// trackflow's web UI: MLflow's hash links, table tree and selection, writes through the
// REST API, and charts (uPlot) from the sampled-history endpoint. No build step.
"use strict";

(function () {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
  const ROOT = meta("root-path");
  const CSRF = meta("csrf-token");

  // -- MLflow's URL scheme: /#/experiments/{id}[/runs/{run_id}], /#/compare-runs?runs=[...],
  // /#/experiments/{id}/models/{model_id}, /#/models[/{name}[/versions/{n}]]
  function forwardHash() {
    const hash = window.location.hash;
    if (!hash.startsWith("#/")) return false;
    const [path, search] = hash.slice(1).split("?");
    const params = new URLSearchParams(search || "");
    const list = (name) => {
      const raw = params.get(name);
      if (!raw) return [];
      try { return JSON.parse(raw).map(String); } catch (e) { return raw.split(","); }
    };
    let m;
    let target = null;
    if ((m = path.match(/^\/experiments\/([^/]+)\/models\/([^/]+)/))) {  // MLflow 3 logged model
      target = `/experiments/${m[1]}/models/${m[2]}`;
    } else if ((m = path.match(/^\/models(?:\/([^/]+)(?:\/versions\/(\d+))?)?\/?$/))) {
      target = "/models" + (m[1] ? `/${m[1]}` + (m[2] ? `#v${m[2]}` : "") : "");
    } else if ((m = path.match(/^\/experiments\/([^/]+)\/runs\/([^/]+)(\/artifacts(\/.*)?)?/))) {
      target = `/experiments/${m[1]}/runs/${m[2]}`;
      if (m[3]) target += "/artifacts" + (m[4] ? "?path=" + encodeURIComponent(m[4].slice(1)) : "");
    } else if ((m = path.match(/^\/experiments\/([^/]+)/))) {
      target = `/experiments/${m[1]}`;
    } else if (path.startsWith("/compare-runs")) {
      target = "/compare?runs=" + list("runs").join(",");
    } else if (path.startsWith("/compare-experiments")) {
      target = "/experiments/" + list("experiments").join(",");
    } else if (path === "/" || path === "") {
      target = "/";
    }
    if (target === null) return false;
    const next = document.querySelector("form.login input[name=next]");
    if (next) {  // signing in first: go on to the linked page afterwards
      next.value = target;
      return false;
    }
    window.location.replace(ROOT + target);
    return true;
  }
  if (forwardHash()) return;
  // An MLflow link pasted into a tab already showing trackflow changes only the hash.
  window.addEventListener("hashchange", forwardHash);

  // -- messages and writes ------------------------------------------------------------
  function toast(text, isError = true) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.className = isError ? "error" : "ok";
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, isError ? 12000 : 3000);
  }

  async function api(path, body) {
    const response = await fetch(`${ROOT}/ajax-api/2.0/mlflow/${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = data.message || `${response.status} ${response.statusText}`;
      toast(message);
      const error = new Error(message);
      error.shown = true;
      throw error;
    }
    return data;
  }

  // An event handler that writes: a refused write was shown already, anything else is.
  const guard = (handler) => (...args) => handler(...args).catch((error) => {
    if (!error.shown) toast(String(error));
  });

  document.addEventListener("htmx:configRequest", (event) => {
    if (CSRF) event.detail.headers["X-CSRF-Token"] = CSRF;
  });
  document.addEventListener("htmx:responseError", (event) => {
    // Error fragments are (escaped) HTML: show their text, never their markup.
    const xhr = event.detail.xhr;
    const text = new DOMParser().parseFromString(xhr.responseText, "text/html").body.textContent;
    toast(`Loading failed: ${xhr.status} ${text.trim().slice(0, 300)}`);
  });

  document.getElementById("logout")?.addEventListener("click", guard(async () => {
    await fetch(`${ROOT}/ui/logout`, { method: "POST", headers: { "X-CSRF-Token": CSRF } });
    window.location.assign(`${ROOT}/ui/login`);
  }));

  // -- experiments ---------------------------------------------------------------------
  function experimentsPage() {
    document.getElementById("create-experiment")?.addEventListener("submit", guard(async (event) => {
      event.preventDefault();
      const name = event.target.elements.name.value.trim();
      if (!name) return;
      const created = await api("experiments/create", { name });
      window.location.assign(`${ROOT}/experiments/${created.experiment_id}`);
    }));
    for (const row of document.querySelectorAll("#experiments tr[data-experiment]")) {
      const id = row.dataset.experiment;
      row.querySelector(".rename")?.addEventListener("click", guard(async () => {
        const name = window.prompt("New name", row.dataset.name);
        if (name === null || name.trim() === "" || name === row.dataset.name) return;
        await api("experiments/update", { experiment_id: id, new_name: name.trim() });
        window.location.reload();
      }));
      row.querySelector(".delete")?.addEventListener("click", guard(async () => {
        if (!window.confirm(`Delete experiment “${row.dataset.name}”? It can be restored.`)) return;
        await api("experiments/delete", { experiment_id: id });
        window.location.reload();
      }));
      row.querySelector(".restore")?.addEventListener("click", guard(async () => {
        await api("experiments/restore", { experiment_id: id });
        window.location.reload();
      }));
    }
    document.getElementById("compare-experiments")?.addEventListener("click", () => {
      const ids = [...document.querySelectorAll("#experiments tr[data-experiment]")]
        .filter((r) => r.querySelector(".pick")?.checked).map((r) => r.dataset.experiment);
      if (ids.length === 0) { toast("Select one or more experiments first"); return; }
      window.location.assign(`${ROOT}/experiments/${ids.join(",")}`);
    });
  }

  // -- runs table: tree, selection, a bounded document ---------------------------------
  const MAX_ROWS = 1000; // the table's data-max-rows may set another bound

  function subtree(row) {
    const depth = Number(row.dataset.depth);
    const out = [];
    for (let next = row.nextElementSibling; next; next = next.nextElementSibling) {
      if (Number(next.dataset.depth) <= depth) break;
      out.push(next);
    }
    return out;
  }

  function runsTable() {
    const body = document.getElementById("rows");
    if (!body) return;
    body.addEventListener("click", (event) => {
      const button = event.target.closest("button.toggle");
      if (!button) return;
      const row = button.closest("tr");
      if (button.getAttribute("aria-expanded") === "true") {
        subtree(row).forEach((r) => r.remove());
        button.setAttribute("aria-expanded", "false");
        button.textContent = "▸";
        return;
      }
      button.setAttribute("aria-expanded", "true");
      button.textContent = "▾";
      htmx.ajax("GET", button.dataset.url, { target: row, swap: "afterend" });
    });
    const compare = document.getElementById("compare");
    const picked = () => [...body.querySelectorAll("tr.run")].filter((r) => r.querySelector(".pick")?.checked);
    const update = () => {
      const n = picked().length;
      compare.disabled = n < 1;
      compare.textContent = n ? `Compare selected (${n})` : "Compare selected";
    };
    body.addEventListener("change", (event) => { if (event.target.matches(".pick")) update(); });
    document.getElementById("pick-all")?.addEventListener("change", (event) => {
      body.querySelectorAll("tr.run .pick").forEach((box) => { box.checked = event.target.checked; });
      update();
    });
    compare?.addEventListener("click", () => {
      const ids = picked().map((r) => r.dataset.run);
      window.location.assign(`${ROOT}/compare?runs=${ids.join(",")}`);
    });
    // At most about a thousand rows in the document: the oldest top-level pages go first.
    const bound = () => {
      const rows = body.querySelectorAll("tr.run");
      const most = Number(body.dataset.maxRows || MAX_ROWS);
      if (rows.length <= most) return;
      let excess = rows.length - most;
      for (const row of [...rows]) {
        if (excess <= 0) break;
        if (row.dataset.depth !== "0") continue;
        const group = [row, ...subtree(row)];
        group.forEach((r) => r.remove());
        excess -= group.filter((r) => r.classList.contains("run")).length;
      }
      let note = document.getElementById("dropped");
      if (!note) {
        note = document.createElement("tr");
        note.id = "dropped";
        note.className = "dropped";
        note.innerHTML = '<td colspan="99"><a href="">Earlier rows were let go to keep the page fast: back to the top</a></td>';
      }
      body.prepend(note);
    };
    body.addEventListener("htmx:afterSettle", bound);  // tree levels (htmx)

    // Further top-level pages: the next page is fetched as soon as the rows before it
    // show, and put in when the table's end scrolls near, so scrolling waits for no
    // server. Plain DOM insertion: htmx's settle pass would restyle every new row twice.
    const ahead = new Map(); // the next page's URL -> its fragment (a promise)
    const fetchPage = async (url) => {
      const response = await fetch(url, { credentials: "same-origin" });
      const text = await response.text();
      if (!response.ok) {
        // Error fragments are (escaped) HTML: show their text, never their markup.
        const shown = new DOMParser().parseFromString(text, "text/html").body.textContent;
        throw new Error(`Loading failed: ${response.status} ${shown.trim().slice(0, 300)}`);
      }
      return text;
    };
    const showNext = async (marker) => {
      const row = marker.closest("tr");
      const url = marker.dataset.next;
      let html;
      try {
        html = await ahead.get(url);
      } catch (error) {
        marker.textContent = "Loading failed";
        toast(error.message);
        return;
      } finally {
        ahead.delete(url);
      }
      const template = document.createElement("template");
      template.innerHTML = html;
      const next = template.content.querySelector(".next-page[data-next]");
      const scripted = template.content.querySelector("[hx-get]") !== null;
      row.replaceWith(template.content);
      if (scripted) htmx.process(body);
      if (next) watch(next);
      bound();
    };
    const pager = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        pager.unobserve(e.target);
        showNext(e.target);
      }
    }, { root: body.closest(".table-wrap"), rootMargin: "0px 0px 600px 0px" });
    const watch = (marker) => {
      const url = marker.dataset.next;
      const pending = fetchPage(url);
      pending.catch(() => {});  // reported when the page is wanted
      ahead.set(url, pending);
      pager.observe(marker);
    };
    body.querySelectorAll(".next-page[data-next]").forEach(watch);
  }

  // -- note ------------------------------------------------------------------------------
  function noteForm() {
    const form = document.getElementById("note-form");
    form?.addEventListener("submit", guard(async (event) => {
      event.preventDefault();
      const value = form.elements.note.value;
      await api("runs/set-tag", { run_id: form.dataset.run, key: form.dataset.key, value });
      // The server renders the markdown (sanitised): the page shows what it would on load.
      const rendered = await fetch(`${ROOT}/ui/note?run_id=${encodeURIComponent(form.dataset.run)}`,
        { credentials: "same-origin" });
      if (!rendered.ok) throw new Error(`the note was saved; showing it failed: ${rendered.status}`);
      document.getElementById("note-text").innerHTML = await rendered.text();
      toast("Note saved", false);
    }));
  }

  // -- charts ----------------------------------------------------------------------------
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];

  // One read per chart: every run's sampled series of the metric, as columns. The page
  // preloads the first charts' URLs, so this must build the URL the page wrote.
  async function histories(runs, key, points) {
    const url = `${ROOT}/api/2.0/trackflow/metrics/get-history-sampled-bulk` +
      `?metric_key=${encodeURIComponent(key)}&max_points=${points}` +
      runs.map((r) => `&run_id=${encodeURIComponent(r)}`).join("");
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${key}: ${response.status}`);
    const data = await response.json();
    return data.series.map((s) => s.steps.map((step, i) => [step, s.timestamps[i], Number(s.values[i])]));
  }

  function smooth(values, weight) {
    if (!weight) return values;
    let last = 0, debias = 0;
    return values.map((v) => {
      if (v === null || !Number.isFinite(v)) return v;
      last = last * weight + (1 - weight) * v;
      debias = debias * weight + (1 - weight);
      return last / debias;
    });
  }

  function seriesData(points, axis, weight, log) {
    const t0 = points.length ? points[0][1] : 0;
    const xs = points.map((p) => (axis === "step" ? p[0] : axis === "wall" ? p[1] / 1000 : (p[1] - t0) / 1000));
    let ys = smooth(points.map((p) => p[2]), weight);
    if (log) ys = ys.map((v) => (v > 0 ? v : null));
    // uPlot wants x ascending: wall/relative time can step back when a step is logged late.
    const order = xs.map((x, i) => i).sort((a, b) => xs[a] - xs[b] || a - b);
    return [order.map((i) => xs[i]), order.map((i) => ys[i])];
  }

  function chartsSection(section) {
    const runs = JSON.parse(section.dataset.runs);
    const names = JSON.parse(section.dataset.names);
    const metrics = JSON.parse(section.dataset.metrics);
    const grid = section.querySelector(".chart-grid");
    const controls = {
      axis: section.querySelector(".x-axis"),
      smoothing: section.querySelector(".smoothing"),
      log: section.querySelector(".log-scale"),
    };
    const url = new URL(window.location.href);
    if (url.searchParams.get("x")) controls.axis.value = url.searchParams.get("x");
    if (url.searchParams.get("smooth")) controls.smoothing.value = url.searchParams.get("smooth");
    if (url.searchParams.get("log") === "1") controls.log.checked = true;
    if (runs.length > 1) {
      const legend = document.createElement("div");
      legend.className = "chart-legend";
      legend.id = "chart-legend";
      names.forEach((name, i) => {
        const item = document.createElement("span");
        item.innerHTML = '<span class="run-swatch"></span>';
        item.firstChild.style.background = COLORS[i % COLORS.length];
        item.append(name);
        legend.appendChild(item);
      });
      grid.before(legend);
      section.classList.add("shared-legend");
    }
    const charts = new Map(); // metric -> {box, plot, data}
    // What tests and the benchmark read: the uPlot instance per metric.
    const stats = (window.__trackflowCharts = { requested: metrics.length, drawn: 0, plots: {} });

    // A metric logged once per run is a bar per run, never a one-point line.
    function drawBars(key, entry) {
      const values = entry.data.map((points) => (points.length ? points[points.length - 1][2] : null));
      const finite = values.filter(Number.isFinite);
      const lo = Math.min(0, ...finite), hi = Math.max(0, ...finite);
      const box = document.createElement("div");
      box.className = "bars";
      names.forEach((name, i) => {
        const label = document.createElement("span");
        label.innerHTML = '<span class="run-swatch"></span>';
        label.firstChild.style.background = COLORS[i % COLORS.length];
        label.append(name);
        const track = document.createElement("div");
        track.className = "bar-track";
        const fill = document.createElement("div");
        fill.className = "bar-fill";
        const v = values[i];
        fill.style.background = COLORS[i % COLORS.length];
        fill.style.width = Number.isFinite(v) && hi > lo ? `${(100 * (v - lo)) / (hi - lo)}%` : "0";
        fill.title = `${name}: ${Number.isFinite(v) ? v : "—"}`;
        track.appendChild(fill);
        const value = document.createElement("span");
        value.className = "num";
        value.textContent = Number.isFinite(v) ? String(+v.toPrecision(4)) : "—";
        box.append(label, track, value);
      });
      const title = document.createElement("h4");
      title.textContent = key;
      entry.box.replaceChildren(title, box);
      entry.box.dataset.kind = "bars";
    }

    function draw(key) {
      const entry = charts.get(key);
      if (!entry || !entry.data) return;
      if (entry.data.every((points) => points.length <= 1)) {
        drawBars(key, entry);
        entry.box.dataset.drawn = "1";
        return;
      }
      const axis = controls.axis.value;
      const weight = Number(controls.smoothing.value);
      const log = controls.log.checked;
      // Smoothed: the raw line stays, faint, under the smoothed one.
      const per = entry.data.map((points) => {
        const smoothed = seriesData(points, axis, weight, log);
        return weight ? [...smoothed, seriesData(points, axis, 0, log)[1]] : smoothed;
      });
      const joined = per.length === 1 ? per[0] : uPlot.join(per);
      const series = [{ label: axis }];
      names.forEach((name, i) => {
        const color = COLORS[i % COLORS.length];
        series.push({
          label: name, stroke: color, width: 1.25, spanGaps: true,
          // A short series shows its points (one point alone draws no line).
          points: { show: per[i][0].length <= 50, size: 5, fill: color },
        });
        if (weight) series.push({ label: `${name} (raw)`, stroke: color + "40", width: 1, spanGaps: true, points: { show: false } });
      });
      const opts = {
        width: Math.max(320, entry.box.clientWidth - 8),
        height: 240,
        title: key,
        scales: { x: { time: axis === "wall" }, y: { distr: log ? 3 : 1 } },
        axes: [{ label: axis === "step" ? "step" : axis === "wall" ? "" : "seconds" }, {}],
        series,
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
      };
      if (entry.plot) entry.plot.destroy();
      entry.box.replaceChildren();
      entry.plot = new uPlot(opts, joined, entry.box);
      stats.plots[key] = entry.plot;
      entry.box.dataset.kind = "line";
      entry.box.dataset.drawn = "1";
    }

    async function load(key) {
      const entry = charts.get(key);
      entry.box.classList.add("loading");
      try {
        entry.data = await histories(runs, key, section.dataset.maxPoints);
      } catch (error) {
        entry.box.textContent = `Could not load ${key}: ${error.message}`;
        return;
      }
      entry.box.classList.remove("loading");
      entry.box.textContent = "";
      draw(key);
      stats.drawn += 1;
      if (stats.drawn === stats.requested) grid.dataset.ready = "1";
    }

    const observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        observer.unobserve(e.target);
        load(e.target.dataset.metric);
      }
    }, { rootMargin: "400px" });
    for (const key of metrics) {
      const box = document.createElement("div");
      box.className = "chart";
      box.dataset.metric = key;
      box.textContent = `${key}…`;
      grid.appendChild(box);
      charts.set(key, { box, plot: null, data: null });
      observer.observe(box);
    }
    if (metrics.length === 0) grid.dataset.ready = "1";

    const redraw = () => {
      section.querySelector(".smoothing-value").textContent = controls.smoothing.value;
      const params = new URL(window.location.href);
      params.searchParams.set("x", controls.axis.value);
      params.searchParams.set("smooth", controls.smoothing.value);
      if (controls.log.checked) params.searchParams.set("log", "1"); else params.searchParams.delete("log");
      window.history.replaceState(null, "", params);
      charts.forEach((_entry, key) => draw(key));
    };
    controls.axis.addEventListener("change", redraw);
    controls.smoothing.addEventListener("input", redraw);
    controls.log.addEventListener("change", redraw);
    section.querySelector(".smoothing-value").textContent = controls.smoothing.value;
  }

  // -- compare: differences, params against a metric ------------------------------------
  function comparePage() {
    const only = document.getElementById("only-diff");
    const apply = () => document.querySelectorAll("#compare-params tr.param.same")
      .forEach((r) => { r.hidden = only.checked; });
    only?.addEventListener("change", apply);
    if (only) apply();
    const section = document.getElementById("relations");
    if (!section) return;
    const params = JSON.parse(section.dataset.params);
    const latest = JSON.parse(section.dataset.latest);
    const names = JSON.parse(section.dataset.names);
    const plot = document.getElementById("relation-plot");
    const kind = document.getElementById("relation-kind");
    const colourSelect = document.getElementById("relation-colour");
    const paramSelect = document.getElementById("relation-param");
    const metricSelect = document.getElementById("relation-metric");
    let scatter = null;

    function axisValues(key, values) {
      const numbers = values.map((v) => (v === undefined || v === null || v === "" ? NaN : Number(v)));
      if (numbers.every((n) => Number.isFinite(n) || Number.isNaN(n)) && numbers.some(Number.isFinite)) {
        return { numeric: true, values: numbers, labels: null };
      }
      const labels = [...new Set(values.map((v) => String(v ?? "—")))].sort();
      return { numeric: false, values: values.map((v) => labels.indexOf(String(v ?? "—"))), labels };
    }

    // A param with one value across the runs says nothing: no axis for it.
    const varying = params.keys.filter((k) => new Set(params.values.map((p) => String(p[k] ?? "—"))).size > 1);
    const isInt = (c) => c.numeric && c.values.filter(Number.isFinite).every(Number.isInteger);

    function parallel(metric) {
      const keys = [...varying, metric];
      const columns = keys.map((k, i) => axisValues(k, i < varying.length
        ? params.values.map((p) => p[k]) : latest.map((m) => m[metric])));
      const canvas = document.createElement("canvas");
      const width = Math.max(480, plot.clientWidth - 8), height = 320;
      canvas.width = width * devicePixelRatio; canvas.height = height * devicePixelRatio;
      canvas.style.width = width + "px"; canvas.style.height = height + "px";
      canvas.id = "parallel";
      plot.replaceChildren(canvas);
      const ctx = canvas.getContext("2d");
      ctx.scale(devicePixelRatio, devicePixelRatio);
      // Room on the right for the runs' names beside the metric's axis.
      const pad = 50, right = 170, top = 30, bottom = height - 30;
      const x = (i) => pad + (i * (width - pad - right)) / Math.max(1, keys.length - 1);
      const room = Math.max(4, Math.floor((width - pad - right) / Math.max(1, keys.length - 1) / 7));
      const fit = (text) => (text.length > room ? text.slice(0, room - 1) + "…" : text);
      const ranges = columns.map((c) => {
        const finite = c.values.filter(Number.isFinite);
        const lo = Math.min(...finite), hi = Math.max(...finite);
        return [lo, hi === lo ? lo + 1 : hi];
      });
      const y = (col, v) => bottom - ((v - ranges[col][0]) / (ranges[col][1] - ranges[col][0])) * (bottom - top);
      const metricRange = ranges[keys.length - 1];
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = "#333";
      keys.forEach((k, i) => {
        ctx.strokeStyle = "#999"; ctx.beginPath(); ctx.moveTo(x(i), top); ctx.lineTo(x(i), bottom); ctx.stroke();
        ctx.textAlign = "center";
        ctx.fillText(fit(k), x(i), top - 12);
        const c = columns[i];
        const tick = (v) => (isInt(c) ? String(Math.round(v)) : String(+v.toPrecision(4)));
        const hiValue = isInt(c) ? Math.max(...c.values.filter(Number.isFinite)) : ranges[i][1];
        ctx.fillText(fit(c.labels ? c.labels[c.labels.length - 1] ?? "" : tick(hiValue)), x(i), top - 1);
        ctx.fillText(fit(c.labels ? c.labels[0] ?? "" : tick(ranges[i][0])), x(i), bottom + 14);
      });
      // By run: the run's colour, as on every chart of the page. By the metric: a scale
      // from red (the worst) to green (the best), the metric's direction as the table's.
      const higher = document.querySelector(`#compare-params tr.metric[data-key="${CSS.escape(metric)}"]`)
        ?.dataset.higher !== "false";
      const colourOf = (run) => {
        if (colourSelect?.value !== "metric") return COLORS[run % COLORS.length];
        const m = columns[keys.length - 1].values[run];
        if (!Number.isFinite(m)) return "#999";
        let t = (m - metricRange[0]) / (metricRange[1] - metricRange[0]);
        if (!higher) t = 1 - t;
        return `hsl(${Math.round(120 * t)}, 70%, 40%)`;
      };
      const used = [];
      names.forEach((name, run) => {
        // Its name at the metric's end.
        ctx.strokeStyle = colourOf(run);
        used.push(ctx.strokeStyle);
        ctx.lineWidth = 1.75;
        ctx.beginPath();
        let started = false;
        columns.forEach((c, i) => {
          const v = c.values[run];
          if (!Number.isFinite(v)) { started = false; return; }
          if (!started) { ctx.moveTo(x(i), y(i, v)); started = true; } else ctx.lineTo(x(i), y(i, v));
        });
        ctx.stroke();
        const m = columns[keys.length - 1].values[run];
        if (Number.isFinite(m)) {
          ctx.fillStyle = colourOf(run);
          ctx.textAlign = "left";
          ctx.fillText(name.length > 24 ? name.slice(0, 23) + "…" : name, x(keys.length - 1) + 6, y(keys.length - 1, m) + 4);
        }
      });
      plot.dataset.axes = JSON.stringify(keys);
      plot.dataset.colours = JSON.stringify(used);
      plot.dataset.drawn = "parallel";
    }

    function scatterPlot(param, metric) {
      const xs = axisValues(param, params.values.map((p) => p[param]));
      const ys = latest.map((m) => (m[metric] === undefined ? null : m[metric]));
      const runsShown = names.map((n, i) => i).filter((i) => Number.isFinite(xs.values[i]));
      // One series per run: its colour, its name in the hover label.
      const tables = runsShown.map((i) => [[xs.values[i]], [ys[i]]]);
      const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
      if (scatter) scatter.destroy();
      plot.replaceChildren();
      const integer = isInt(xs) || Boolean(xs.labels);
      scatter = new uPlot({
        width: Math.max(480, plot.clientWidth - 8), height: 320, title: `${metric} by ${param}`,
        mode: 1,
        scales: { x: { time: false } },
        axes: [{
          label: param,
          incrs: integer ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1e4, 1e5, 1e6] : undefined,
          values: (u, ticks) => {
            const labels = ticks.map((t) => (xs.labels ? xs.labels[t] ?? "" : String(+t.toPrecision(6))));
            plot.dataset.xticks = JSON.stringify(labels);  // what tests read: the canvas has no text
            return labels;
          },
        }, { label: metric }],
        series: [{ label: param }, ...runsShown.map((i) => ({
          label: names[i], stroke: COLORS[i % COLORS.length], paths: () => null,
          points: { show: true, size: 9, fill: COLORS[i % COLORS.length] },
        }))],
        legend: { live: true },
      }, data, plot);
      plot.dataset.drawn = "scatter";
    }

    const render = () => {
      const metric = metricSelect.value;
      if (!metric) { plot.textContent = "No metrics to relate."; return; }
      if (kind.value === "scatter") {
        if (!paramSelect.value) { plot.textContent = "No params to relate."; return; }
        scatterPlot(paramSelect.value, metric);
      } else parallel(metric);
    };
    [kind, paramSelect, metricSelect, colourSelect].forEach((el) => el?.addEventListener("change", render));
    render();
  }

  // A form whose selects apply on change (the pipeline history's step and metric).
  document.querySelectorAll("form.autosubmit select").forEach((select) => {
    select.addEventListener("change", () => {
      if (select.name === "step") {
        const metric = select.form.elements.metric;  // the new step has its own metrics
        if (metric) metric.disabled = true;
      }
      select.form.submit();
    });
  });

  const page = document.body.dataset.page;
  if (page === "experiments") experimentsPage();
  if (page === "runs") runsTable();
  if (page === "run") noteForm();
  if (page === "compare") comparePage();
  document.querySelectorAll("section.charts").forEach(chartsSection);
})();
