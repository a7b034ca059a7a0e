"use strict";
// The timeline page's script: reads the data section (#roof-data), draws each run as SVG,
// zooms, pans, folds idle stretches and shows the trace line of what is clicked. Plain
// JavaScript, no library, no network.
(function () {
  const errors = [];
  function showErrors() {
    const box = document.getElementById("errors");
    box.textContent = errors.join("\n");
    document.body.dataset.errors = String(errors.length);
  }
  window.addEventListener("error", (event) => {
    errors.push(String(event.message || event));
    showErrors();
  });

  const ROW = 14, HEAD = 20, GAP = 8, AXIS = 24, LEFT = 120, RIGHT = 16;
  // Past this many arrows in view, arrows are bundled per pair of lanes and few pixels.
  const ARROWS_DRAWN_MAX = 4000;
  const params = new URLSearchParams(location.search);
  const DATA = JSON.parse(document.getElementById("roof-data").textContent);
  const runs = DATA.runs;

  function esc(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function stamp(ns) {
    const seconds = Math.floor(ns / 1e9);
    return seconds + "." + String(ns - seconds * 1e9).padStart(9, "0") + "s";
  }
  function duration(ns, step) {
    const units = [[1e9, "s"], [1e6, "ms"], [1e3, "µs"], [1, "ns"]];
    for (const [size, unit] of units) {
      if (step >= size || size === 1) {
        const digits = Math.max(0, Math.min(9, Math.ceil(-Math.log10(step / size) + 1e-9)));
        return (ns / size).toFixed(digits) + " " + unit;
      }
    }
    return ns + " ns";
  }

  // A time on a folded axis: its own unit, three significant digits.
  function label(ns) {
    const units = [[1e9, "s"], [1e6, "ms"], [1e3, "µs"], [1, "ns"]];
    const [size, unit] = units.find(([size]) => ns >= size) || units[3];
    return Number((ns / size).toPrecision(3)) + " " + unit;
  }

  // ----- decoding -----------------------------------------------------------------------
  function decode(run, index) {
    const rows = run.events.rows, shapes = run.events.shapes;
    const times = new Float64Array(rows.length);
    let time = 0;
    for (let i = 0; i < rows.length; i++) {
      time += rows[i][0];
      times[i] = time;
    }
    run.index = index;
    run.times = times;
    run.end = rows.length ? times[rows.length - 1] : 0;
    run.line = (i) => {
      const row = rows[i], shape = shapes[row[1]];
      let text = stamp(times[i]) + " ", arg = 2;
      for (const part of shape) {
        if (typeof part === "string") text += part;
        else if (part === 2) text += stamp(row[arg++] + times[i]);
        else text += String(row[arg++]);
      }
      return text;
    };
    run.taskList = run.tasks.map(([id, name, host, row, spawn, end, ending, polls]) => {
      let at = 0;
      return { id, name, host, row, spawn, end, ending, polls: polls.map((d) => (at += d)) };
    });
    let send = 0;
    run.arrowList = run.arrows.map(([delta, end, from, to, fate, flags, task, reader]) => {
      send += delta;
      return { send, end: end < 0 ? -1 : send + end, from, to, fate, flags, task, reader };
    });
    run.laneY = [];
    let y = AXIS;
    for (const [, rows] of run.hosts) {
      run.laneY.push(y);
      y += HEAD + rows * ROW + GAP;
    }
    run.height = y + 14;
  }
  runs.forEach(decode);

  // ----- the time axis, shared by the runs ----------------------------------------------
  const END = Math.max(1, ...runs.map((run) => run.end));
  let fold = null;
  function buildFold() {
    const all = [];
    for (const run of runs) for (let i = 0; i < run.times.length; i++) all.push(run.times[i]);
    all.push(0, END);
    all.sort((a, b) => a - b);
    // A gap is idle past ten times the usual gap between distinct event times (and past a
    // thousandth of the run): it is drawn that long, with a mark where time was folded.
    const gaps = [];
    for (let i = 1; i < all.length; i++) if (all[i] > all[i - 1]) gaps.push(all[i] - all[i - 1]);
    gaps.sort((a, b) => a - b);
    const usual = gaps.length ? gaps[gaps.length >> 1] : 1;
    const cap = Math.max(1, 10 * usual, END / 1000);
    const T = [], U = [];
    for (const t of all) {
      if (T.length && T[T.length - 1] === t) continue;
      U.push(T.length ? U[U.length - 1] + Math.min(t - T[T.length - 1], cap) : 0);
      T.push(t);
    }
    return { T, U, cap, end: U[U.length - 1] || 1 };
  }
  function search(values, value) {
    let low = 0, high = values.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (values[mid] <= value) low = mid; else high = mid - 1;
    }
    return low;
  }
  function through(from, to, value) {
    const i = search(from, value);
    if (i >= from.length - 1) return to[to.length - 1] + (value - from[from.length - 1]);
    const span = from[i + 1] - from[i];
    return to[i] + (span ? ((value - from[i]) / span) * (to[i + 1] - to[i]) : 0);
  }
  // Folded from the start when idle stretches are most of the run (unless ?fold=0 or 1).
  const folded = params.has("fold") ? params.get("fold") === "1" : (fold = buildFold()).end < END / 2;
  const state = { fold: folded, v0: 0, v1: END * 1.02 };
  function toU(t) { return state.fold ? through(fold.T, fold.U, t) : t; }
  function toT(u) { return state.fold ? through(fold.U, fold.T, u) : u; }
  function axisEnd() { return state.fold ? fold.end : END; }
  // Each event's place on the axis, computed once per mode (folding costs a search).
  function place() {
    for (const run of runs) {
      run.us = new Float64Array(run.times.length);
      for (let i = 0; i < run.times.length; i++) run.us[i] = toU(run.times[i]);
      run.uEnd = toU(run.end);
    }
  }
  function setFold(on) {
    const t0 = toT(state.v0), t1 = toT(state.v1);
    if (on && !fold) fold = buildFold();
    state.fold = on;
    state.v0 = toU(t0);
    state.v1 = toU(t1);
    place();
  }
  if (state.fold) { state.fold = false; setFold(true); state.v1 = fold.end * 1.02; } else place();
  // ?from=NS&to=NS: open on that stretch of virtual time (a link to a moment of a run).
  if (params.has("from") || params.has("to")) {
    const from = Number(params.get("from") || 0), to = Number(params.get("to") || END);
    if (to > from) { state.v0 = toU(from); state.v1 = toU(to); }
  }

  // ----- drawing --------------------------------------------------------------------------
  const BAND_NAMES = { crash: "crash", partition: "partition", clog: "clog", degrade: "degraded link", pause: "paused", disk: "disk fault" };
  const ENDINGS = ["complete", "cancel", "panic", "running"];
  const FATES = ["delivered", "dropped", "lost", "in_flight"];
  let width = 800;

  function render() {
    const began = performance.now();
    const view = document.getElementById("views");
    width = Math.max(640, view.clientWidth || 800);
    const plot = width - LEFT - RIGHT;
    const scale = plot / Math.max(1e-9, state.v1 - state.v0);
    const x = (t) => LEFT + (toU(t) - state.v0) * scale;
    // An event's x, from its precomputed place on the axis.
    let us = null;
    const xe = (i) => LEFT + (us[i] - state.v0) * scale;
    const xEnd = () => LEFT + (us.end - state.v0) * scale;
    const visible = (a, b) => b >= LEFT - 1 && a <= width + 1;
    for (const run of runs) {
      const out = [];
      const times = run.times;
      us = run.us;
      us.end = run.uEnd;
      const rowY = (host, row) => run.laneY[host] + HEAD + row * ROW;
      out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${run.height}" data-run="${run.index}">`);
      out.push(`<defs><marker id="head${run.index}" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L6,3L0,6z" fill="#51698a"/></marker></defs>`);
      axis(out, x, run.height);
      // Lanes: background, bands, tasks, polls, timers, marks.
      run.hosts.forEach(([name, rows], host) => {
        const y0 = run.laneY[host], h = HEAD + rows * ROW;
        out.push(`<g class="lane" data-host="${esc(name)}">`);
        out.push(`<rect class="lane-bg" x="0" y="${y0}" width="${width}" height="${h}"/>`);
        out.push(`<text class="lane-label" x="6" y="${y0 + 14}">${esc(name)}</text>`);
        run.bands.forEach(([kind, hosts, start, end], i) => {
          if (!hosts.includes(host)) return;
          const a = xe(start), b = end < 0 ? xEnd() + 4 : xe(end);
          if (!visible(a, b)) return;
          const left = Math.max(LEFT, a);
          out.push(`<rect class="band ${kind}" data-k="b" data-i="${i}" x="${left}" y="${y0}" width="${Math.max(2, b - left)}" height="${h}"><title>${esc(BAND_NAMES[kind] || kind)}</title></rect>`);
        });
        out.push(`</g>`);
      });
      run.taskList.forEach((task, i) => {
        const a = xe(task.spawn), b = task.end < 0 ? xEnd() : xe(task.end);
        if (!visible(a, b)) return;
        const y = rowY(task.host, task.row) + 1;
        const left = Math.max(LEFT - 2, a), w = Math.max(2, Math.min(width, b) - left);
        out.push(`<rect class="task ${ENDINGS[task.ending]}" data-k="t" data-i="${i}" x="${left}" y="${y}" width="${w}" height="${ROW - 2}"><title>${esc(task.name)} #${task.id}</title></rect>`);
        if (w > 46) out.push(`<text x="${left + 3}" y="${y + 10}" class="row-label">${esc(task.name)} #${task.id}</text>`);
        // Polls closer than a few pixels merge into one strip (its count on click).
        let first = -1, from = 0, to = -1e9, n = 0;
        const flush = () => {
          if (first < 0) return;
          const more = n > 1 ? ` data-n="${n}"` : "";
          out.push(`<rect class="poll" data-k="p" data-i="${first}"${more} x="${from - 0.75}" y="${y + 2}" width="${to - from + 1.5}" height="${ROW - 6}"/>`);
        };
        for (let k = 0; k < task.polls.length; k++) {
          const px = xe(task.polls[k]);
          if (px > width + 1) break;
          if (px < LEFT - 1) continue;
          if (px - to < 4) { to = px; n++; continue; }
          flush();
          first = task.polls[k]; from = px; to = px; n = 1;
        }
        flush();
      });
      run.timers.forEach(([host, task, set, end, fired], i) => {
        const a = xe(set), b = end < 0 ? xEnd() : xe(end);
        if (!visible(a, b) || b - a < 1) return;
        const t = task >= 0 ? run.taskList[task] : null;
        const y = t ? rowY(t.host, t.row) + ROW / 2 : run.laneY[host] + HEAD - 5;
        out.push(`<line class="timer" data-k="r" data-i="${i}" x1="${a}" y1="${y}" x2="${b}" y2="${y}"/>`);
        if (fired) out.push(`<circle class="timer-fire" data-k="r" data-i="${i}" cx="${b}" cy="${y}" r="2.2"/>`);
      });
      run.marks.forEach(([kind, event, host, task, text], i) => {
        const px = xe(event);
        if (px < LEFT - 4 || px > width + 4) return;
        const t = task >= 0 ? run.taskList[task] : null;
        const y = t ? rowY(t.host, t.row) + ROW / 2 : host >= 0 ? run.laneY[host] + 10 : AXIS - 5;
        out.push(`<path class="mark ${kind}" data-k="m" data-i="${i}" d="M${px},${y - 5}L${px + 4},${y}L${px},${y + 5}L${px - 4},${y}z"><title>${esc(text)}</title></path>`);
      });
      arrows(out, run, xe, xEnd, visible);
      if (run.failure) {
        const [event, host, task, text] = run.failure;
        const px = xe(event);
        out.push(`<g class="failure" data-k="f" data-i="0"><line x1="${px}" y1="${AXIS - 6}" x2="${px}" y2="${run.height}"/>`);
        const label = esc(text.length > 90 ? text.slice(0, 90) + "…" : text);
        const anchor = px > width / 2 ? `text-anchor="end" x="${px - 4}"` : `x="${px + 4}"`;
        out.push(`<text ${anchor} y="${run.height - 6}">✖ ${label}</text></g>`);
      }
      if (DATA.diff && DATA.diff.index >= 0) {
        const event = Math.min(DATA.diff.index, times.length - 1);
        if (event >= 0) {
          const px = xe(event);
          out.push(`<g class="divergence" data-k="d" data-i="${event}"><line x1="${px}" y1="${AXIS - 6}" x2="${px}" y2="${run.height}"/><text x="${px + 4}" y="${AXIS + 12}">first divergence: event ${DATA.diff.index}</text></g>`);
        }
      }
      out.push(`</svg>`);
      document.getElementById(`run${run.index}`).innerHTML = out.join("");
    }
    document.body.dataset.rendered = "1";
    // How long the last redraw took: what keeps zoom and pan interactive.
    document.body.dataset.renderMs = String(Math.round(performance.now() - began));
  }

  function axis(out, x, height) {
    const span = state.v1 - state.v0;
    const raw = span / Math.max(2, (width - LEFT - RIGHT) / 110);
    const power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    out.push(`<g class="axis">`);
    for (let u = Math.ceil(state.v0 / step) * step; u <= state.v1; u += step) {
      const px = LEFT + ((u - state.v0) / span) * (width - LEFT - RIGHT);
      const t = toT(u);
      out.push(`<line x1="${px}" y1="${AXIS - 4}" x2="${px}" y2="${height}"/><text x="${px + 2}" y="${AXIS - 12}">${state.fold ? label(t) : duration(t, step)}</text>`);
    }
    if (state.fold) {
      for (let i = 1; i < fold.T.length; i++) {
        if (fold.T[i] - fold.T[i - 1] <= fold.cap) continue;
        const px = x(fold.T[i - 1]) + (x(fold.T[i]) - x(fold.T[i - 1])) / 2;
        if (px < LEFT || px > width) continue;
        out.push(`<line class="fold" x1="${px}" y1="${AXIS - 4}" x2="${px}" y2="${height}"><title>${duration(fold.T[i] - fold.T[i - 1], fold.T[i] - fold.T[i - 1])} folded</title></line>`);
      }
    }
    out.push(`</g>`);
  }

  function arrows(out, run, xe, xEnd, visible) {
    const times = run.times;
    const rowOf = (task, host) => {
      const t = task >= 0 ? run.taskList[task] : null;
      return t ? run.laneY[t.host] + HEAD + t.row * ROW + ROW / 2 : run.laneY[host] + HEAD - 6;
    };
    const from = (arrow) => rowOf(arrow.task, arrow.from);
    const shown = [];
    for (let i = 0; i < run.arrowList.length; i++) {
      const arrow = run.arrowList[i];
      const a = xe(arrow.send);
      const b = arrow.end >= 0 ? xe(arrow.end) : xEnd();
      if (visible(Math.min(a, b), Math.max(a, b))) shown.push(i);
    }
    const bundle = shown.length > ARROWS_DRAWN_MAX;
    const bundles = new Map();
    for (const i of shown) {
      const arrow = run.arrowList[i];
      const a = xe(arrow.send), y1 = from(arrow);
      const y2 = rowOf(arrow.reader, arrow.to);
      const fate = FATES[arrow.fate];
      if (bundle) {
        const key = `${arrow.from},${arrow.to},${Math.floor(a / 16)},${fate}`;
        const entry = bundles.get(key);
        if (entry) entry.n++; else bundles.set(key, { i, n: 1, a, y1, y2, fate });
        continue;
      }
      const classes = `arrow ${fate}${arrow.flags & 1 ? " held" : ""}${arrow.flags & 4 ? " control" : ""}`;
      if (arrow.fate === 2) {
        out.push(`<line class="${classes}" data-k="a" data-i="${i}" x1="${a}" y1="${y1}" x2="${a + 8}" y2="${y1 + (y2 > y1 ? 6 : -6)}"/>`);
        cross(out, a + 8, y1 + (y2 > y1 ? 6 : -6));
        continue;
      }
      const b = arrow.end >= 0 ? xe(arrow.end) : xEnd();
      const head = arrow.fate === 0 ? ` marker-end="url(#head${run.index})"` : "";
      out.push(`<line class="${classes}" data-k="a" data-i="${i}" x1="${a}" y1="${y1}" x2="${b}" y2="${y2}"${head}/>`);
      if (arrow.fate === 1) cross(out, b, y2);
    }
    for (const entry of bundles.values()) {
      const w = Math.min(6, 1 + Math.log2(entry.n));
      out.push(`<line class="arrow bundle ${entry.fate}" data-k="x" data-i="${entry.i}" data-n="${entry.n}" stroke-width="${w}" x1="${entry.a}" y1="${entry.y1}" x2="${entry.a + 4}" y2="${entry.y2}"/>`);
    }
    run.bundled = bundle;
  }

  function cross(out, px, py) {
    out.push(`<path class="cross" d="M${px - 3},${py - 3}L${px + 3},${py + 3}M${px - 3},${py + 3}L${px + 3},${py - 3}"/>`);
  }

  // ----- what a click shows ---------------------------------------------------------------
  function explain(run, kind, i) {
    const line = (event) => (event >= 0 ? run.line(event) : "(the run ended first)");
    switch (kind) {
      case "t": {
        const task = run.taskList[i];
        return [`task #${task.id} ${task.name}: ${task.polls.length} polls, ${ENDINGS[task.ending]}`, line(task.spawn), line(task.end)];
      }
      case "p": case "d": return [line(i)];
      case "a": case "x": {
        const arrow = run.arrowList[i];
        return [line(arrow.send), line(arrow.end)];
      }
      case "m": return [line(run.marks[i][1])];
      case "b": return [line(run.bands[i][2]), line(run.bands[i][3])];
      case "r": return [line(run.timers[i][2]), line(run.timers[i][3])];
      case "f": return [run.failure[3], line(run.failure[0])];
      default: return [];
    }
  }
  let selected = null;
  function select(target) {
    const svg = target.closest("svg");
    const item = target.closest("[data-k]");
    if (!svg || !item) return;
    const run = runs[Number(svg.dataset.run)];
    const lines = explain(run, item.dataset.k, Number(item.dataset.i));
    const prefix = runs.length > 1 ? `${run.index === 0 ? "first" : "second"} run: ` : "";
    const what = item.dataset.k === "p" ? "polls" : "arrows";
    const bundled = item.dataset.n ? `${item.dataset.n} ${what} drawn as one here: zoom in to see each\n` : "";
    document.getElementById("detail").textContent = prefix + bundled + lines.join("\n");
    if (selected) selected.classList.remove("selected");
    selected = item;
    item.classList.add("selected");
  }

  // ----- zoom, pan, fold ------------------------------------------------------------------
  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }
  function zoom(factor, anchorX) {
    const plot = width - LEFT - RIGHT;
    const ratio = Math.min(1, Math.max(0, (anchorX - LEFT) / plot));
    const anchor = state.v0 + ratio * (state.v1 - state.v0);
    const span = Math.min(axisEnd() * 1.05, Math.max(10, (state.v1 - state.v0) * factor));
    state.v0 = anchor - ratio * span;
    state.v1 = state.v0 + span;
    clamp();
    redraw();
  }
  function clamp() {
    const span = state.v1 - state.v0, end = axisEnd();
    if (state.v0 < 0) { state.v0 = 0; state.v1 = span; }
    if (state.v1 > end && span <= end) { state.v1 = end; state.v0 = end - span; }
  }
  const views = document.getElementById("views");
  views.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = views.getBoundingClientRect();
    zoom(event.deltaY < 0 ? 0.8 : 1.25, event.clientX - box.left);
  }, { passive: false });
  let drag = null;
  views.addEventListener("mousedown", (event) => {
    drag = { x: event.clientX, v0: state.v0, v1: state.v1, moved: false };
    views.classList.add("dragging");
  });
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    if (Math.abs(dx) > 2) drag.moved = true;
    const du = (-dx / (width - LEFT - RIGHT)) * (drag.v1 - drag.v0);
    state.v0 = drag.v0 + du;
    state.v1 = drag.v1 + du;
    clamp();
    redraw();
  });
  window.addEventListener("mouseup", (event) => {
    if (drag && !drag.moved) select(event.target);
    drag = null;
    views.classList.remove("dragging");
  });
  document.getElementById("zoom-in").onclick = () => zoom(0.5, width / 2);
  document.getElementById("zoom-out").onclick = () => zoom(2, width / 2);
  document.getElementById("reset").onclick = () => { state.v0 = 0; state.v1 = axisEnd() * 1.02; redraw(); };
  const foldBox = document.getElementById("fold");
  foldBox.checked = state.fold;
  foldBox.onchange = () => { setFold(foldBox.checked); redraw(); };
  window.addEventListener("resize", redraw);
  window.addEventListener("keydown", (event) => {
    if (event.key === "+" || event.key === "=") zoom(0.5, width / 2);
    if (event.key === "-") zoom(2, width / 2);
  });

  render();
  // ?redraws=N: redraw N more times and keep the median time (what a zoom or pan costs).
  const redraws = Math.min(100, Number(params.get("redraws") || 0));
  if (redraws > 0) {
    const took = [];
    for (let k = 0; k < redraws; k++) { render(); took.push(Number(document.body.dataset.renderMs)); }
    took.sort((a, b) => a - b);
    document.body.dataset.renderMs = String(took[took.length >> 1]);
  }
  const chosen = params.get("select");
  if (chosen !== null) {
    const run = runs[Number(params.get("run") || 0)];
    document.getElementById("detail").textContent = run.line(Number(chosen));
  }
  // ?selftest=1: drive the page as a person would (wheel, drag, the fold box, a click on a
  // task) and record in data-selftest whether each did what it should.
  if (params.get("selftest") === "1") {
    const box = views.getBoundingClientRect();
    const at = (x) => ({ clientX: box.left + x, clientY: box.top + 40, bubbles: true, cancelable: true });
    const span = state.v1 - state.v0;
    views.dispatchEvent(new WheelEvent("wheel", { ...at(LEFT + 300), deltaY: -100 }));
    const zoomed = state.v1 - state.v0 < span;
    const start = state.v0;
    views.dispatchEvent(new MouseEvent("mousedown", at(LEFT + 400)));
    window.dispatchEvent(new MouseEvent("mousemove", at(LEFT + 300)));
    window.dispatchEvent(new MouseEvent("mouseup", at(LEFT + 300)));
    const panned = state.v0 > start;
    const wasFolded = state.fold;
    foldBox.click();
    const toggled = state.fold !== wasFolded;
    render();
    const task = document.querySelector('[data-k="t"]');
    task.dispatchEvent(new MouseEvent("mousedown", at(LEFT + 10)));
    task.dispatchEvent(new MouseEvent("mouseup", at(LEFT + 10)));
    const clicked = document.getElementById("detail").textContent.startsWith("task #");
    document.body.dataset.selftest = [zoomed, panned, toggled, clicked].join(",");
  }
  const drawn = document.querySelectorAll(".arrow.delivered").length;
  document.body.dataset.arrowsDelivered = String(drawn);
  showErrors();
})();
