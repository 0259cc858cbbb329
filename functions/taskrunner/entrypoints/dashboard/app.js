/* taskrunner dashboard: plain JavaScript, no dependencies, no build step.
 *
 * Every API call is relative to the page (so it works behind a stage prefix on AWS) and carries
 * the API key the user entered (kept in localStorage) as X-Api-Key. Live status comes from the
 * task's Server-Sent Events stream (`links.stream`, which carries its own token).
 */
"use strict";

(function () {
  const STATUSES = ["PENDING", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "CANCELLED"];
  const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
  const RETRYABLE = new Set(["FAILED", "CANCELLED"]);
  const KEY_STORAGE = "taskrunner.apiKey";
  // the list is polled every 0.75 s while the tab is visible, so a change shows within a second
  // (cheap: the API answers 304 to the page's ETag when nothing changed); counts and queues
  // every 5 s; the charts every 30 s
  const REFRESH_MS = 750;
  const COUNTS_EVERY_MS = 5000;
  const SERIES_EVERY_MS = 30000;
  const RANGE_MS = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, all: null };
  const MAX_STREAMS = 3; // browsers allow ~6 connections per host over HTTP/1.1
  const STREAM_RETRIES = 3;

  // /dashboard -> /, /dev/dashboard -> /dev/ : the API lives next to the page.
  const ROOT = (function () {
    const path = location.pathname.replace(/\/dashboard\/?$/, "/");
    return path.endsWith("/") ? path : path.replace(/[^/]*$/, "");
  })();

  const state = {
    apiKey: "",
    connected: false,
    types: [],
    typeByName: new Map(),
    fields: [],
    cursors: [null],
    page: 0,
    nextCursor: null,
    rows: new Map(),
    tasks: new Map(),
    selected: null,
    lastSubmitted: null,
    streams: new Map(),
    streamRetries: new Map(),
    refreshTimer: null,
    countsAt: 0,
    countsDirty: true,
    listSeq: 0,
    listEtag: null,
    listKey: "",
    listTasks: [],
    seriesAt: 0,
    charts: {},
    monitorBusy: false,
  };

  // ------------------------------------------------------------------ helpers

  const $ = (selector) => document.querySelector(selector);

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function ago(iso) {
    if (!iso) return "—";
    const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (!Number.isFinite(seconds)) return String(iso);
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return fmtTime(iso);
  }

  function percentOf(task) {
    if (task.status === "COMPLETED") return 100;
    const p = task.progress && task.progress.percent;
    return typeof p === "number" && Number.isFinite(p) ? Math.max(0, Math.min(100, p)) : 0;
  }

  function seconds(from, to) {
    if (!from) return null;
    const a = new Date(from).getTime();
    const b = to ? new Date(to).getTime() : Date.now();
    return Number.isFinite(a) && Number.isFinite(b) ? Math.max(0, (b - a) / 1000) : null;
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return "—";
    if (s < 10) return `${s.toFixed(2)} s`;
    if (s < 120) return `${s.toFixed(1)} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }

  // waiting in the queue: created -> started (still waiting: until now)
  function queueWait(task) {
    if (task.started_at) return seconds(task.created_at, task.started_at);
    if (TERMINAL.has(task.status)) return null;
    return seconds(task.created_at, null);
  }

  // running: started -> completed (still running: until now)
  function duration(task) {
    if (!task.started_at) return null;
    if (TERMINAL.has(task.status)) return task.completed_at ? seconds(task.started_at, task.completed_at) : null;
    return seconds(task.started_at, null);
  }

  function pretty(value) {
    if (value === null || value === undefined) return "—";
    return JSON.stringify(value, null, 2);
  }

  function statusClass(status) {
    return "badge status-" + String(status || "unknown").toLowerCase();
  }

  function setBadge(node, status) {
    node.textContent = status || "…";
    node.className = statusClass(status);
  }

  function progressBar(task, extraClass) {
    const bar = h("div", { class: "bar" });
    bar.style.width = `${percentOf(task)}%`;
    return h("div", { class: "progress " + (extraClass || "") + " " + statusClass(task.status).replace("badge ", "") }, bar);
  }

  function streamUrl(link) {
    if (/^https?:\/\//i.test(link)) return link; // the stream function's own URL (AWS)
    return ROOT + String(link).replace(/^\//, "");
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, detail) {
      super(typeof detail === "string" ? detail : JSON.stringify(detail));
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (state.apiKey) headers["X-Api-Key"] = state.apiKey;
    if (opts.etag) headers["If-None-Match"] = opts.etag;
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    let response;
    try {
      response = await fetch(ROOT + path, { method: opts.method || "GET", headers, body, cache: "no-store" });
    } catch (err) {
      throw new ApiError(0, "the service is unreachable");
    }
    if (response.status === 304) return { notModified: true };
    if (opts.onEtag) opts.onEtag(response.headers.get("ETag"));
    const text = await response.text();
    let payload = null;
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch (err) {
        payload = text;
      }
    }
    if (!response.ok) {
      let detail = response.statusText || `HTTP ${response.status}`;
      if (payload && typeof payload === "object") detail = payload.detail !== undefined ? payload.detail : payload.message || detail;
      else if (typeof payload === "string" && payload) detail = payload;
      throw new ApiError(response.status, detail);
    }
    return payload;
  }

  function locText(loc) {
    return (loc || []).filter((part) => part !== "body").join(".");
  }

  function describe(detail) {
    if (Array.isArray(detail)) {
      return detail.map((d) => (d && typeof d === "object" ? `${locText(d.loc) || "request"}: ${d.msg}` : String(d))).join("; ");
    }
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }

  function notify(message, kind) {
    const box = $("#notice");
    box.textContent = message || "";
    box.className = "notice " + (kind || "info");
    box.hidden = !message;
  }

  function report(err, context) {
    if (err && err.status === 401) {
      setConnected(false);
      notify(`API key rejected (${describe(err.detail)}). Enter a valid key above.`, "error");
      return;
    }
    const detail = err instanceof ApiError ? describe(err.detail) : String(err && err.message ? err.message : err);
    notify(`${context}: ${detail}`, "error");
  }

  // ------------------------------------------------------------------ task updates

  function applyUpdate(task) {
    if (!task || !task.task_id) return task;
    const id = task.task_id;
    const prev = state.tasks.get(id);
    if (prev && typeof prev.version === "number" && typeof task.version === "number" && task.version < prev.version) {
      if (task.links) prev.links = task.links; // an older snapshot may still carry a fresher stream link
      return prev;
    }
    const merged = Object.assign({}, prev || {}, task);
    if (!task.links && prev && prev.links) merged.links = prev.links;
    state.tasks.set(id, merged);
    if (prev && prev.status !== merged.status) state.countsDirty = true;
    updateRow(merged);
    if (state.selected === id) renderDetail(merged);
    if (state.lastSubmitted === id) renderSubmitted(merged);
    return merged;
  }

  // ------------------------------------------------------------------ live streams

  function watch(task) {
    if (!task || !task.links || !task.links.stream || TERMINAL.has(task.status)) return;
    const id = task.task_id;
    if (state.streams.has(id)) return;
    while (state.streams.size >= MAX_STREAMS) {
      const victim = [...state.streams.keys()].find((other) => other !== state.selected);
      if (!victim) break;
      unwatch(victim);
    }
    const source = new EventSource(streamUrl(task.links.stream));
    state.streams.set(id, source);
    source.onopen = () => {
      state.streamRetries.delete(id);
      updateLive();
    };
    source.onmessage = (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      const merged = applyUpdate(data);
      if (merged && TERMINAL.has(merged.status)) {
        unwatch(id);
        state.countsDirty = true;
        scheduleRefresh(300);
      }
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (an expired token, a lost task): fetch the state for a fresh link, a few times.
        unwatch(id);
        const tries = (state.streamRetries.get(id) || 0) + 1;
        state.streamRetries.set(id, tries);
        if (tries <= STREAM_RETRIES) setTimeout(() => rewatch(id), 1000 * tries);
      }
      updateLive();
    };
    updateLive();
  }

  async function rewatch(id) {
    try {
      const task = applyUpdate(await api(`api/tasks/${encodeURIComponent(id)}/state`));
      watch(task);
    } catch (err) {
      if (err.status !== 404) report(err, "Following the task");
    }
  }

  function unwatch(id) {
    const source = state.streams.get(id);
    if (source) {
      source.close();
      state.streams.delete(id);
    }
    updateLive();
  }

  function updateLive() {
    const badge = $("#detail-live");
    const source = state.selected ? state.streams.get(state.selected) : null;
    if (!source) {
      badge.hidden = true;
      return;
    }
    badge.hidden = false;
    const open = source.readyState === EventSource.OPEN;
    badge.textContent = open ? "live" : "connecting…";
    badge.className = "live" + (open ? "" : " waiting");
  }

  // ------------------------------------------------------------------ counts

  async function loadCounts() {
    const range = $("#filter-range").value;
    const stats = await api("api/stats?" + new URLSearchParams({ range }).toString());
    state.countsAt = Date.now();
    state.countsDirty = false;
    renderCounts(stats);
  }

  function renderCounts(stats) {
    const plus = stats.complete ? "" : "+";
    const cards = [countCard("", "All", `${stats.total}${plus}`)];
    for (const status of STATUSES) cards.push(countCard(status, status, `${stats.counts[status] || 0}${plus}`));
    $("#counts").replaceChildren(...cards);
    const label = $("#filter-range").selectedOptions[0].textContent;
    const when = stats.range === "all" ? "" : ` created in the ${label}`;
    const cut = stats.complete ? "" : " (counting stopped at its time limit)";
    $("#counts-note").textContent = `${stats.total}${plus} task${stats.total === 1 ? "" : "s"}${when}, counted by the service${cut}`;
    $("#oldest-pending").textContent =
      stats.oldest_pending_seconds === null ? "no task of yours waiting" : `your oldest PENDING task waits ${fmtSeconds(stats.oldest_pending_seconds)}`;
  }

  async function loadQueues() {
    const data = await api("api/queues");
    const rows = data.queues.map((q) =>
      h(
        "tr",
        { class: `queue-row ${q.kind}${q.visible + q.in_flight + q.delayed > 0 ? " nonzero" : ""}`, dataset: { queue: q.name } },
        h("td", { text: q.name + (q.kind === "dead-letter" ? " (DLQ)" : "") }),
        h("td", { class: "num q-visible", text: String(q.visible) }),
        h("td", { class: "num q-in-flight", text: String(q.in_flight) }),
        h("td", { class: "num q-delayed", text: String(q.delayed) }),
      ),
    );
    $("#queue-rows").replaceChildren(...rows);
  }

  // ------------------------------------------------------------------ charts (uPlot, vendored)

  function chartWidth(node) {
    return Math.max(300, Math.floor(node.getBoundingClientRect().width || 480));
  }

  function drawChart(name, node, opts, data) {
    const old = state.charts[name];
    if (old && old.width === chartWidth(node)) {
      old.plot.setData(data);
      return;
    }
    if (old) old.plot.destroy();
    const width = chartWidth(node);
    const plot = new window.uPlot(Object.assign({ width, height: 200 }, opts), data, node);
    state.charts[name] = { plot, width };
  }

  async function loadSeries() {
    const s = await api("api/stats/series?minutes=60");
    state.seriesAt = Date.now();
    if (typeof window.uPlot !== "function") return;
    const axes = [{}, { size: 50 }];
    drawChart(
      "throughput",
      $("#chart-throughput"),
      {
        axes,
        series: [{}, { label: "completed", stroke: "#1a7f37", fill: "rgba(26,127,55,0.15)" }, { label: "failed", stroke: "#b42318" }],
      },
      [s.t, s.completed, s.failed],
    );
    drawChart(
      "latency",
      $("#chart-latency"),
      {
        axes,
        series: [
          {},
          { label: "run p50", stroke: "#2f6feb", points: { show: true, size: 5 }, spanGaps: true },
          { label: "run p95", stroke: "#8250df", points: { show: true, size: 5 }, spanGaps: true },
          { label: "wait p50", stroke: "#bf8700", points: { show: true, size: 5 }, spanGaps: true },
          { label: "wait p95", stroke: "#d4a72c", dash: [4, 4], points: { show: true, size: 5 }, spanGaps: true },
        ],
      },
      [s.t, s.run_p50, s.run_p95, s.wait_p50, s.wait_p95],
    );
    const ended = s.completed.reduce((a, b) => a + b, 0) + s.failed.reduce((a, b) => a + b, 0);
    $("#charts-note").textContent = `${ended} task${ended === 1 ? "" : "s"} ended; from your ${s.sampled} task${s.sampled === 1 ? "" : "s"} created in the last hour${s.complete ? "" : " (newest only)"}`;
  }

  function countCard(status, label, value) {
    const active = $("#filter-status").value === status && !$("#filter-active").checked;
    return h(
      "button",
      {
        type: "button",
        class: "count " + (status ? "status-" + status.toLowerCase() : "status-all") + (active ? " selected" : ""),
        id: "count-" + (status || "ALL"),
        title: status ? `Show ${status} tasks` : "Show all tasks",
        onclick: () => {
          $("#filter-status").value = status;
          $("#filter-active").checked = false;
          resetPaging();
          loadList().catch((err) => report(err, "Loading tasks"));
          refreshCountsSelection();
        },
      },
      h("span", { class: "count-value", text: value }),
      h("span", { class: "count-label", text: label }),
    );
  }

  function refreshCountsSelection() {
    const status = $("#filter-status").value;
    const active = $("#filter-active").checked;
    for (const card of document.querySelectorAll("#counts .count")) {
      const cardStatus = card.id === "count-ALL" ? "" : card.id.slice("count-".length);
      card.classList.toggle("selected", !active && cardStatus === status);
    }
  }

  // ------------------------------------------------------------------ list

  function resetPaging() {
    state.cursors = [null];
    state.page = 0;
  }

  async function loadList() {
    const seq = ++state.listSeq;
    const query = new URLSearchParams({ limit: $("#filter-limit").value });
    const status = $("#filter-status").value;
    const name = $("#filter-name").value;
    if (status) query.set("status", status);
    if ($("#filter-active").checked) query.set("active", "true");
    if (name) query.set("name", name);
    const cursor = state.cursors[state.page];
    if (cursor) query.set("cursor", cursor);
    const key = query.toString();
    let etag = null;
    const page = await api("api/tasks?" + key, {
      etag: key === state.listKey ? state.listEtag : null,
      onEtag: (value) => {
        etag = value;
      },
    });
    if (seq !== state.listSeq) return; // a newer load is on its way
    if (!page.notModified) {
      state.listKey = key;
      state.listEtag = etag;
      state.listTasks = page.tasks;
      state.nextCursor = page.next_cursor || null;
    }
    // The list is newest first: the tasks of a time range are a prefix of each page, and once
    // a page reaches older tasks there is no need for the next one.
    const cutoff = RANGE_MS[$("#filter-range").value];
    const since = cutoff ? Date.now() - cutoff : null;
    const shown = since ? state.listTasks.filter((t) => new Date(t.created_at).getTime() >= since) : state.listTasks;
    const reachedOlder = shown.length < state.listTasks.length;
    renderRows(shown);
    $("#page-prev").disabled = state.page === 0;
    $("#page-next").disabled = !state.nextCursor || reachedOlder;
    $("#page-info").textContent = `page ${state.page + 1} · ${shown.length} task${shown.length === 1 ? "" : "s"}`;
  }

  function renderRows(tasks) {
    const shown = [...state.rows.keys()];
    if (shown.length === tasks.length && tasks.every((t, i) => t.task_id === shown[i])) {
      // The same tasks in the same order: update the rows in place (keeps focus and hover).
      for (const listed of tasks) fillRow(state.rows.get(listed.task_id), applyUpdateQuiet(listed));
      $("#list-empty").hidden = tasks.length > 0;
      return;
    }
    state.rows = new Map();
    const rows = tasks.map((listed) => {
      const task = applyUpdateQuiet(listed);
      const row = h("tr", {
        class: "task-row",
        tabindex: "0",
        dataset: { taskId: task.task_id },
        onclick: () => openDetail(task.task_id),
        onkeydown: (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            openDetail(task.task_id);
          }
        },
      });
      fillRow(row, task);
      state.rows.set(task.task_id, row);
      return row;
    });
    $("#task-rows").replaceChildren(...rows);
    $("#list-empty").hidden = tasks.length > 0;
    forgetUnseen();
  }

  // Keep what is on screen or followed; forget the rest of what earlier pages showed.
  function forgetUnseen() {
    for (const id of [...state.tasks.keys()]) {
      if (!state.rows.has(id) && !state.streams.has(id) && id !== state.selected && id !== state.lastSubmitted) state.tasks.delete(id);
    }
  }

  // The newest of the listed snapshot and what the stream already told us, without re-rendering.
  function applyUpdateQuiet(task) {
    const prev = state.tasks.get(task.task_id);
    if (prev && typeof prev.version === "number" && typeof task.version === "number" && task.version < prev.version) return prev;
    const merged = Object.assign({}, prev || {}, task);
    if (!task.links && prev && prev.links) merged.links = prev.links;
    state.tasks.set(task.task_id, merged);
    return merged;
  }

  function fillRow(row, task) {
    const pct = Math.round(percentOf(task));
    row.classList.toggle("selected", state.selected === task.task_id);
    row.replaceChildren(
      h("td", null, h("span", { class: statusClass(task.status) + " row-status", text: task.status })),
      h("td", { class: "name", text: task.name }),
      h("td", null, h("code", { class: "short-id", title: task.task_id, text: task.task_id.slice(0, 8) })),
      h("td", null, h("div", { class: "progress-cell" }, progressBar(task, "small"), h("span", { class: "pct", text: `${pct}%` }))),
      h("td", { class: "num wait", text: fmtSeconds(queueWait(task)) }),
      h("td", { class: "num duration", text: fmtSeconds(duration(task)) }),
      h("td", { title: task.created_at || "", text: fmtTime(task.created_at) }),
      h("td", { title: task.updated_at || "", text: ago(task.updated_at) }),
    );
  }

  function updateRow(task) {
    const row = state.rows.get(task.task_id);
    if (row) fillRow(row, task);
  }

  // ------------------------------------------------------------------ detail

  function openDetail(id) {
    const hash = "#/tasks/" + encodeURIComponent(id);
    if (location.hash === hash) showDetail(id);
    else location.hash = hash; // -> route()
  }

  async function showDetail(id) {
    state.selected = id;
    const panel = $("#detail");
    panel.hidden = false;
    for (const [rowId, row] of state.rows) row.classList.toggle("selected", rowId === id);
    const known = state.tasks.get(id);
    if (known) renderDetail(known);
    else clearDetail(id);
    updateLive();
    panel.scrollIntoView({ block: "nearest", behavior: "smooth" });
    try {
      const task = applyUpdate(await api(`api/tasks/${encodeURIComponent(id)}/state`));
      if (state.selected === id) {
        renderDetail(task);
        watch(task);
      }
    } catch (err) {
      if (err.status === 404) {
        notify(`Task ${id} not found.`, "error");
        closeDetail();
      } else {
        report(err, "Loading the task");
      }
    }
  }

  function clearDetail(id) {
    setBadge($("#detail-status"), null);
    $("#detail-name").textContent = "";
    $("#detail-id").textContent = id;
    $("#detail-progress-bar").style.width = "0%";
    $("#detail-progress-text").textContent = "loading…";
    for (const sel of ["#detail-facts", "#detail-callback", "#detail-attempt-list"]) $(sel).replaceChildren();
    $("#detail-attempts-block").hidden = true;
    $("#detail-retry").hidden = true;
    for (const sel of ["#detail-parameters", "#detail-result", "#detail-error", "#detail-metadata"]) $(sel).textContent = "";
  }

  function fact(term, value, id) {
    return [h("dt", { text: term }), h("dd", { id: id || null, text: value === null || value === undefined || value === "" ? "—" : String(value) })];
  }

  // a long task runs over several worker invocations (segments); between two it waits for
  // the next to start
  function segmentsText(task) {
    if (typeof task.segments !== "number" || task.segments === 0) return null;
    return task.between_segments ? `${task.segments}, handing over to the next invocation` : String(task.segments);
  }

  function renderDetail(task) {
    setBadge($("#detail-status"), task.status);
    $("#detail-name").textContent = task.name || "";
    $("#detail-id").textContent = task.task_id;
    const pct = percentOf(task);
    const bar = $("#detail-progress-bar");
    bar.style.width = `${pct}%`;
    bar.parentElement.className = "progress large " + statusClass(task.status).replace("badge ", "");
    const message = task.progress && task.progress.message ? ` — ${task.progress.message}` : "";
    $("#detail-progress-text").textContent = `${Math.round(pct * 10) / 10}%${message}`;

    const facts = [
      ...fact("Queue", task.queue),
      ...fact("Attempts", task.attempts !== undefined ? `${task.attempts} of ${task.max_attempts}` : null, "detail-attempts"),
      ...fact("Timeout", task.timeout_seconds ? `${task.timeout_seconds} s` : null),
      ...fact("Segments", segmentsText(task), "detail-segments"),
      ...fact("Max runtime", task.max_runtime_seconds ? `${task.max_runtime_seconds} s` : null),
      ...fact("Created", fmtTime(task.created_at)),
      ...fact("Started", fmtTime(task.started_at)),
      ...fact("Updated", fmtTime(task.updated_at)),
      ...fact("Completed", fmtTime(task.completed_at)),
    ];
    if (task.checkpointed_at) facts.push(...fact("Checkpoint", fmtTime(task.checkpointed_at)));
    if (task.next_attempt_at) facts.push(...fact("Next attempt", fmtTime(task.next_attempt_at)));
    if (task.cancel_requested) facts.push(...fact("Cancel", "requested"));
    if (typeof task.version === "number") facts.push(...fact("Version", task.version));
    if (task.retry_of) {
      facts.push(
        h("dt", { text: "Retry of" }),
        h("dd", {}, h("a", { id: "detail-retry-of", href: "#/tasks/" + encodeURIComponent(task.retry_of), text: task.retry_of })),
      );
    }
    $("#detail-facts").replaceChildren(...facts);

    $("#detail-parameters").textContent = pretty(task.parameters);
    $("#detail-result").textContent = task.result === null || task.result === undefined ? (TERMINAL.has(task.status) ? "—" : "not yet") : pretty(task.result);
    const error = task.error;
    $("#detail-error-block").hidden = !error;
    $("#detail-error").textContent = error ? `${error.type}: ${error.message}` : "";

    renderAttempts(task.task_id, task.attempt_history || []);

    const cb = task.callback;
    if (!cb) {
      $("#detail-callback").replaceChildren(...fact("URL", "none (no callback_url)"));
    } else {
      $("#detail-callback").replaceChildren(
        ...fact("URL", cb.url),
        ...fact("Status", cb.status, "detail-callback-status"),
        ...fact("Attempts", cb.attempts),
        ...fact("Delivered", fmtTime(cb.delivered_at)),
        ...(cb.last_error ? fact("Last error", cb.last_error) : []),
      );
    }
    const hasMetadata = task.metadata && Object.keys(task.metadata).length > 0;
    $("#detail-metadata-block").hidden = !hasMetadata;
    $("#detail-metadata").textContent = hasMetadata ? pretty(task.metadata) : "";

    const cancel = $("#detail-cancel");
    const ended = TERMINAL.has(task.status);
    cancel.disabled = ended || Boolean(task.cancel_requested);
    cancel.textContent = task.cancel_requested && !ended ? "Cancel requested" : "Cancel task";
    cancel.hidden = ended;
    const retry = $("#detail-retry");
    retry.hidden = !RETRYABLE.has(task.status);
    retry.disabled = false;
  }

  function renderAttempts(taskId, history) {
    $("#detail-attempts-block").hidden = history.length === 0;
    // a traceback the reader opened stays open when the task's next update redraws the list
    const list = $("#detail-attempt-list");
    const open = new Set(
      list.dataset.taskId !== taskId
        ? []
        : Array.from(list.querySelectorAll("li.attempt"))
            .filter((li) => li.querySelector("details.traceback[open]"))
            .map((li) => li.dataset.attempt),
    );
    list.dataset.taskId = taskId;
    const items = history.map((a) => {
      const took = typeof a.duration_ms === "number" ? ` in ${a.duration_ms >= 1000 ? (a.duration_ms / 1000).toFixed(1) + " s" : a.duration_ms + " ms"}` : "";
      const segments = typeof a.segments === "number" && a.segments > 1 ? `, ${a.segments} segments` : "";
      const head = h(
        "div",
        { class: "attempt-head" },
        h("strong", { text: `#${a.attempt}` }),
        " ",
        h("span", { class: statusClass(a.outcome === "TIMED_OUT" || a.outcome === "LOST" ? "FAILED" : a.outcome), text: a.outcome }),
        h("span", { class: "muted small", text: ` ${fmtTime(a.started_at)} → ${fmtTime(a.ended_at)}${took}${segments}` }),
      );
      const parts = [head];
      if (a.error) {
        parts.push(h("div", { class: "error-text attempt-error", text: `${a.error.type}: ${a.error.message}` }));
        if (a.error.traceback && a.error.traceback.length) {
          parts.push(
            h("details", { class: "traceback", open: open.has(String(a.attempt)) }, h("summary", { text: `Traceback (last ${a.error.traceback.length} frames)` }), h("pre", { class: "json", text: a.error.traceback.join("\n") })),
          );
        }
      }
      return h("li", { class: "attempt", dataset: { attempt: String(a.attempt), outcome: a.outcome } }, parts);
    });
    list.replaceChildren(...items);
  }

  function closeDetail() {
    state.selected = null;
    $("#detail").hidden = true;
    for (const row of state.rows.values()) row.classList.remove("selected");
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    updateLive();
  }

  async function cancelSelected() {
    const id = state.selected;
    if (!id) return;
    const button = $("#detail-cancel");
    button.disabled = true;
    try {
      const task = applyUpdate(await api(`api/tasks/${encodeURIComponent(id)}/cancel`, { method: "POST" }));
      notify(TERMINAL.has(task.status) ? `Task ${id} ${task.status.toLowerCase()}.` : `Cancellation of task ${id} requested.`, "info");
      watch(task);
      state.countsDirty = true;
      scheduleRefresh(300);
    } catch (err) {
      if (err.status === 409) {
        notify(`Task ${id} cannot be cancelled: ${describe(err.detail)}`, "error");
        rewatch(id);
      } else {
        report(err, "Cancelling");
      }
      button.disabled = false;
    }
  }

  async function retrySelected() {
    const id = state.selected;
    if (!id) return;
    const button = $("#detail-retry");
    button.disabled = true;
    try {
      const accepted = await api(`api/tasks/${encodeURIComponent(id)}/retry`, { method: "POST" });
      notify(`Task ${id} retried as ${accepted.task_id}.`, "info");
      state.countsDirty = true;
      scheduleRefresh(300);
      openDetail(accepted.task_id);
    } catch (err) {
      if (err.status === 409) notify(`Task ${id} cannot be retried: ${describe(err.detail)}`, "error");
      else report(err, "Retrying");
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ submit form

  function unwrap(schema) {
    if (!schema || typeof schema !== "object") return {};
    const options = schema.anyOf || schema.oneOf;
    if (Array.isArray(options)) {
      const concrete = options.filter((o) => o && o.type !== "null");
      if (concrete.length === 1) {
        return Object.assign({}, concrete[0], {
          title: schema.title || concrete[0].title,
          description: schema.description || concrete[0].description,
          default: schema.default !== undefined ? schema.default : concrete[0].default,
        });
      }
      return Object.assign({}, schema, { type: undefined });
    }
    if (Array.isArray(schema.type)) {
      const types = schema.type.filter((t) => t !== "null");
      return Object.assign({}, schema, { type: types.length === 1 ? types[0] : undefined });
    }
    return schema;
  }

  function kindOf(s) {
    if (Array.isArray(s.enum) && s.enum.length && s.enum.every((v) => typeof v === "string" || typeof v === "number")) return "enum";
    if (s.type === "integer" || s.type === "number") return s.type;
    if (s.type === "string") return "string";
    if (s.type === "boolean") return "boolean";
    if (s.type === "array" && s.items) {
      const item = unwrap(s.items).type;
      if (item === "number" || item === "integer") return "numbers";
    }
    return "json";
  }

  function hint(s, kind) {
    const parts = [];
    if (s.description) parts.push(s.description);
    const min = s.minimum !== undefined ? s.minimum : s.exclusiveMinimum;
    if (min !== undefined || s.maximum !== undefined) parts.push(`range ${min !== undefined ? min : "…"}–${s.maximum !== undefined ? s.maximum : "…"}`);
    if (kind === "numbers") parts.push("numbers separated by commas");
    if (kind === "json") parts.push("JSON");
    if (s.default !== undefined && s.default !== null) parts.push(`default ${JSON.stringify(s.default)}`);
    return parts.join(" · ");
  }

  function buildField(name, raw, required) {
    const s = unwrap(raw);
    const kind = kindOf(s);
    const id = "param-" + name;
    let input;
    if (kind === "enum") {
      input = h("select", { id, name });
      if (!required || s.default === undefined) input.append(h("option", { value: "", text: s.default !== undefined ? `default (${s.default})` : "—" }));
      for (const value of s.enum) input.append(h("option", { value: String(value), text: String(value) }));
      if (required && s.default !== undefined) input.value = String(s.default);
    } else if (kind === "integer" || kind === "number") {
      input = h("input", {
        id,
        name,
        type: "number",
        step: kind === "integer" ? "1" : "any",
        min: s.minimum,
        max: s.maximum,
        placeholder: s.default !== undefined && s.default !== null ? String(s.default) : "",
      });
    } else if (kind === "string" && (s.maxLength || 0) > 300) {
      input = h("textarea", { id, name, rows: "2", maxlength: s.maxLength, placeholder: typeof s.default === "string" ? s.default : "" });
    } else if (kind === "string") {
      input = h("input", { id, name, type: "text", maxlength: s.maxLength, placeholder: typeof s.default === "string" ? s.default : s.format === "uri" ? "https://…" : "" });
    } else if (kind === "boolean") {
      input = h("input", { id, name, type: "checkbox" });
      input.checked = s.default === true;
    } else if (kind === "numbers") {
      input = h("input", { id, name, type: "text", inputmode: "decimal", placeholder: "1, 2, 3" });
    } else {
      input = h("textarea", { id, name, rows: "2", spellcheck: "false", placeholder: s.default !== undefined && s.default !== null ? JSON.stringify(s.default) : "" });
    }
    const title = s.title || name;
    const label =
      kind === "boolean"
        ? h("label", { class: "inline", for: id }, input, ` ${title}`)
        : h("label", { for: id }, title, required ? h("span", { class: "required", title: "required", text: " *" }) : null);
    const error = h("p", { class: "field-error", id: id + "-error", hidden: true });
    const wrap = h("div", { class: "field", dataset: { param: name, kind } }, label, kind === "boolean" ? null : input, h("p", { class: "muted small", text: hint(s, kind) }), error);
    return { name, kind, input, wrap, error, schema: s };
  }

  function buildForm() {
    const type = state.typeByName.get($("#task-type").value);
    const container = $("#param-inputs");
    state.fields = [];
    $("#task-type-description").textContent = type ? `${type.description} (queue ${type.queue}, timeout ${type.timeout_seconds} s)` : "";
    const schema = (type && type.parameters_schema) || {};
    const properties = schema.properties && typeof schema.properties === "object" ? schema.properties : null;
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    if (properties) {
      for (const [name, prop] of Object.entries(properties)) state.fields.push(buildField(name, prop, required.has(name)));
    }
    container.replaceChildren(...state.fields.map((f) => f.wrap));
    if (properties && state.fields.length === 0) container.append(h("p", { class: "muted small", text: "This type takes no parameters." }));
    const asJson = $("#params-as-json");
    asJson.disabled = !properties;
    asJson.checked = !properties;
    $("#params-json").value = "{}";
    syncJsonMode();
    clearErrors();
  }

  function readFields() {
    const params = {};
    const problems = [];
    for (const field of state.fields) {
      const { name, kind, input } = field;
      if (kind === "boolean") {
        params[name] = input.checked;
        continue;
      }
      const raw = input.value.trim();
      if (raw === "") continue;
      if (kind === "integer" || kind === "number") {
        const n = Number(raw);
        if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) problems.push([name, `enter ${kind === "integer" ? "a whole number" : "a number"}`]);
        else params[name] = n;
      } else if (kind === "enum") {
        const match = field.schema.enum.find((v) => String(v) === raw);
        params[name] = match !== undefined ? match : raw;
      } else if (kind === "numbers") {
        const parts = raw.replace(/^\[|\]$/g, "").split(/[\s,;]+/).filter(Boolean).map(Number);
        if (parts.some((n) => !Number.isFinite(n))) problems.push([name, "enter numbers separated by commas"]);
        else params[name] = parts;
      } else if (kind === "json") {
        try {
          params[name] = JSON.parse(raw);
        } catch (err) {
          problems.push([name, "enter valid JSON"]);
        }
      } else {
        params[name] = raw;
      }
    }
    return { params, problems };
  }

  function fillFields(params) {
    for (const field of state.fields) {
      const value = params[field.name];
      if (field.kind === "boolean") field.input.checked = value === undefined ? field.schema.default === true : Boolean(value);
      else if (value === undefined || value === null) field.input.value = "";
      else if (field.kind === "numbers" && Array.isArray(value)) field.input.value = value.join(", ");
      else if (field.kind === "json") field.input.value = JSON.stringify(value);
      else field.input.value = String(value);
    }
  }

  function syncJsonMode() {
    const asJson = $("#params-as-json").checked;
    const textarea = $("#params-json");
    textarea.hidden = !asJson;
    $("#param-inputs").hidden = asJson;
  }

  function toggleJsonMode() {
    const asJson = $("#params-as-json").checked;
    if (asJson) {
      const { params } = readFields();
      $("#params-json").value = JSON.stringify(params, null, 2);
    } else {
      try {
        const params = JSON.parse($("#params-json").value || "{}");
        if (params && typeof params === "object" && !Array.isArray(params)) fillFields(params);
      } catch (err) {
        /* keep the fields as they were */
      }
    }
    syncJsonMode();
  }

  function clearErrors() {
    for (const field of state.fields) {
      field.error.hidden = true;
      field.error.textContent = "";
      field.wrap.classList.remove("invalid");
    }
    $("#params-json").classList.remove("invalid");
  }

  function showFieldError(name, message) {
    const field = state.fields.find((f) => f.name === name);
    if (!field) return false;
    field.error.textContent = message;
    field.error.hidden = false;
    field.wrap.classList.add("invalid");
    return true;
  }

  function readOptions(body, problems) {
    const callback = $("#opt-callback").value.trim();
    if (callback) body.callback_url = callback;
    for (const [sel, key] of [["#opt-delay", "delay_seconds"], ["#opt-attempts", "max_attempts"], ["#opt-timeout", "timeout_seconds"], ["#opt-runtime", "max_runtime_seconds"]]) {
      const raw = $(sel).value.trim();
      if (!raw) continue;
      const n = Number(raw);
      if (!Number.isInteger(n)) problems.push(`${key}: enter a whole number`);
      else body[key] = n;
    }
    if ($("#opt-priority").checked) body.priority = true;
    const metadata = $("#opt-metadata").value.trim();
    if (metadata) {
      try {
        const parsed = JSON.parse(metadata);
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
        body.metadata = parsed;
      } catch (err) {
        problems.push("metadata: enter a JSON object");
      }
    }
  }

  async function submitTask(event) {
    event.preventDefault();
    clearErrors();
    const result = $("#submit-result");
    result.replaceChildren();
    const name = $("#task-type").value;
    if (!name) return;
    const problems = [];
    let parameters = {};
    if ($("#params-as-json").checked) {
      try {
        parameters = JSON.parse($("#params-json").value || "{}");
        if (!parameters || typeof parameters !== "object" || Array.isArray(parameters)) throw new Error("not an object");
      } catch (err) {
        $("#params-json").classList.add("invalid");
        problems.push("parameters: enter a JSON object");
      }
    } else {
      const read = readFields();
      parameters = read.params;
      for (const [field, message] of read.problems) {
        showFieldError(field, message);
        problems.push(`${field}: ${message}`);
      }
    }
    const body = { name, parameters };
    readOptions(body, problems);
    if (problems.length) {
      result.replaceChildren(h("p", { class: "error-text", text: "Check the form: " + problems.join("; ") }));
      return;
    }
    const button = $("#submit-button");
    button.disabled = true;
    button.textContent = "Submitting…";
    try {
      const accepted = await api("api/tasks", { method: "POST", json: body });
      state.lastSubmitted = accepted.task_id;
      const task = applyUpdate({
        task_id: accepted.task_id,
        name: accepted.name,
        status: accepted.status,
        created_at: accepted.created_at,
        updated_at: accepted.created_at,
        parameters,
        progress: { percent: 0, message: null },
        links: accepted.links,
      });
      renderSubmitted(task);
      watch(task);
      state.countsDirty = true;
      resetPaging();
      await refreshAll();
    } catch (err) {
      if (err.status === 422 && Array.isArray(err.detail)) {
        const messages = [];
        for (const problem of err.detail) {
          const loc = (problem && problem.loc) || [];
          const param = loc[0] === "body" && loc[1] === "parameters" ? loc[2] : undefined;
          if (!(param !== undefined && showFieldError(String(param), problem.msg))) messages.push(`${locText(loc) || "request"}: ${problem.msg}`);
          else messages.push(`${param}: ${problem.msg}`);
        }
        result.replaceChildren(h("p", { class: "error-text", text: "Rejected: " + messages.join("; ") }));
      } else if (err.status === 401) {
        report(err, "Submitting");
      } else {
        result.replaceChildren(h("p", { class: "error-text", text: `Not submitted (${err.status || "network"}): ${describe(err.detail)}` }));
      }
    } finally {
      button.disabled = false;
      button.textContent = "Submit";
    }
  }

  function renderSubmitted(task) {
    const pct = Math.round(percentOf(task));
    const message = task.progress && task.progress.message ? task.progress.message : "";
    $("#submit-result").replaceChildren(
      h(
        "div",
        { class: "submitted", id: "submitted", dataset: { taskId: task.task_id } },
        h("span", { class: "muted", text: "Submitted " }),
        h("a", { href: "#/tasks/" + encodeURIComponent(task.task_id), class: "task-link", id: "submitted-link", text: `${task.name} ${task.task_id.slice(0, 8)}` }),
        h("span", { id: "submitted-status", class: statusClass(task.status), text: task.status }),
        progressBar(task, "small"),
        h("span", { class: "pct", text: `${pct}%` }),
        message ? h("span", { class: "muted small", text: message }) : null,
      ),
    );
  }

  // ------------------------------------------------------------------ connecting, refreshing

  function setConnected(connected) {
    state.connected = connected;
    document.body.classList.toggle("disconnected", !connected);
    $("#key-forget").hidden = !state.apiKey;
  }

  function populateTypes() {
    const select = $("#task-type");
    const previous = select.value;
    select.replaceChildren(...state.types.map((t) => h("option", { value: t.name, text: t.name })));
    if (state.typeByName.has(previous)) select.value = previous;
    else if (state.typeByName.has("sleep")) select.value = "sleep";
    const filter = $("#filter-name");
    const chosen = filter.value;
    filter.replaceChildren(h("option", { value: "", text: "any" }), ...state.types.map((t) => h("option", { value: t.name, text: t.name })));
    filter.value = state.typeByName.has(chosen) ? chosen : "";
    buildForm();
  }

  async function connect() {
    if (!state.apiKey) {
      setConnected(false);
      notify("Enter an API key to connect (the local runner prints its development key).", "info");
      $("#api-key").focus();
      return;
    }
    notify("Connecting…", "info");
    try {
      const data = await api("api/task-types");
      state.types = data.task_types || [];
      state.typeByName = new Map(state.types.map((t) => [t.name, t]));
      populateTypes();
      setConnected(true);
      notify("", "info");
      resetPaging();
      state.countsDirty = true;
      await refreshAll();
      route();
      scheduleRefresh();
    } catch (err) {
      setConnected(false);
      report(err, "Connecting");
    }
  }

  async function refreshAll() {
    if (!state.connected) return;
    // The monitor's reads (counts, queues, charts) run beside the list, never ahead of it: the
    // list's one-second rhythm does not wait for them.
    refreshMonitor();
    const jobs = [loadList()];
    const shown = state.selected ? state.tasks.get(state.selected) : null;
    if (shown && !state.streams.has(shown.task_id) && callbackPending(shown)) jobs.push(reloadSelected(shown.task_id));
    try {
      await Promise.all(jobs);
    } catch (err) {
      report(err, "Refreshing");
    }
  }

  async function refreshMonitor() {
    if (state.monitorBusy) return;
    const jobs = [];
    const seriesAge = Date.now() - state.seriesAt;
    // a task that ended shows in the charts within seconds, not at the next 30 s refresh
    if (seriesAge > SERIES_EVERY_MS || (state.countsDirty && seriesAge > 3000)) jobs.push(loadSeries());
    if (state.countsDirty || Date.now() - state.countsAt > COUNTS_EVERY_MS) jobs.push(loadCounts(), loadQueues());
    if (!jobs.length) return;
    state.monitorBusy = true;
    try {
      await Promise.all(jobs);
    } catch (err) {
      report(err, "Refreshing the monitor");
    } finally {
      state.monitorBusy = false;
    }
  }

  // The stream ends with the task; its callback may still be on its way.
  function callbackPending(task) {
    return TERMINAL.has(task.status) && task.callback && (task.callback.status === "PENDING" || task.callback.status === "RETRYING");
  }

  async function reloadSelected(id) {
    const task = await api(`api/tasks/${encodeURIComponent(id)}/state`);
    applyUpdate(task);
  }

  function scheduleRefresh(delay) {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(async () => {
      const auto = $("#auto-refresh").checked;
      if (state.connected && !document.hidden && (auto || delay !== undefined)) await refreshAll();
      scheduleRefresh();
    }, delay !== undefined ? delay : REFRESH_MS);
  }

  function route() {
    const match = location.hash.match(/^#\/tasks\/([^/?#]+)$/);
    if (match && state.connected) showDetail(decodeURIComponent(match[1]));
    else if (!match && state.selected) closeDetail();
  }

  // ------------------------------------------------------------------ search by id

  async function searchTask(event) {
    event.preventDefault();
    const wanted = $("#search-id").value.trim();
    if (!wanted) return;
    try {
      const found = await api("api/search?" + new URLSearchParams({ id: wanted }).toString());
      if (found.matches.length === 1) {
        notify("", "info");
        openDetail(found.matches[0].task_id);
      } else {
        notify(`${found.matches.length} tasks start with ${found.query}: ${found.matches.map((m) => `${m.task_id} (${m.name}, ${m.status})`).join("; ")}. Type more of the id.`, "info");
      }
    } catch (err) {
      if (err.status === 404) notify(`No task found: ${describe(err.detail)}`, "error");
      else if (err.status === 422) notify(`Search: ${describe(err.detail)}`, "error");
      else report(err, "Searching");
    }
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    const statusFilter = $("#filter-status");
    for (const status of STATUSES) statusFilter.append(h("option", { value: status, text: status }));
    try {
      state.apiKey = localStorage.getItem(KEY_STORAGE) || "";
    } catch (err) {
      state.apiKey = "";
    }
    $("#api-key").value = state.apiKey;

    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.apiKey = $("#api-key").value.trim();
      try {
        if (state.apiKey) localStorage.setItem(KEY_STORAGE, state.apiKey);
        else localStorage.removeItem(KEY_STORAGE);
      } catch (err) {
        /* storage disabled: keep the key for this page only */
      }
      connect();
    });
    $("#key-forget").addEventListener("click", () => {
      try {
        localStorage.removeItem(KEY_STORAGE);
      } catch (err) {
        /* nothing stored */
      }
      state.apiKey = "";
      $("#api-key").value = "";
      for (const id of [...state.streams.keys()]) unwatch(id);
      closeDetail();
      $("#task-rows").replaceChildren();
      $("#counts").replaceChildren();
      $("#queue-rows").replaceChildren();
      state.listEtag = null;
      connect();
    });
    $("#task-type").addEventListener("change", buildForm);
    $("#search-form").addEventListener("submit", searchTask);
    $("#filter-range").addEventListener("change", () => {
      resetPaging();
      state.countsDirty = true;
      refreshAll();
    });
    $("#params-as-json").addEventListener("change", toggleJsonMode);
    $("#submit-form").addEventListener("submit", submitTask);
    $("#filter-form").addEventListener("submit", (event) => {
      event.preventDefault();
      resetPaging();
      state.countsDirty = true;
      refreshAll();
    });
    for (const sel of ["#filter-status", "#filter-active", "#filter-name", "#filter-limit"]) {
      $(sel).addEventListener("change", () => {
        resetPaging();
        refreshCountsSelection();
        loadList().catch((err) => report(err, "Loading tasks"));
      });
    }
    $("#page-next").addEventListener("click", () => {
      if (!state.nextCursor) return;
      state.cursors[state.page + 1] = state.nextCursor;
      state.page += 1;
      loadList().catch((err) => report(err, "Loading tasks"));
    });
    $("#page-prev").addEventListener("click", () => {
      if (state.page === 0) return;
      state.page -= 1;
      loadList().catch((err) => report(err, "Loading tasks"));
    });
    $("#auto-refresh").addEventListener("change", () => scheduleRefresh());
    $("#detail-close").addEventListener("click", closeDetail);
    $("#detail-cancel").addEventListener("click", cancelSelected);
    $("#detail-retry").addEventListener("click", retrySelected);
    window.addEventListener("hashchange", route);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.connected) scheduleRefresh(0);
    });
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
