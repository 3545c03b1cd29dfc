// Web page of the Sora watermark remover: upload videos, follow their tasks, compare and download.
// Plain JS against the HTTP API in DESIGN.md; no build step. The API key (when the service has one)
// is asked once and kept in localStorage; every API call sends it as `Authorization: Bearer`.
// Each task's own token (returned at submission) is kept with the task and sent as X-Task-Token,
// so a server without a key for this page (ALLOW_ANONYMOUS) still shows the tasks made here.
"use strict";

(() => {
  const KEY_STORE = "sora-unmark.apiKey";
  const TASKS_STORE = "sora-unmark.tasks";
  const POLL_MS = 1500;
  const PING_MS = 5000;
  const TERMINAL = new Set(["finished", "failed", "cancelled"]);

  const $ = (sel, root = document) => root.querySelector(sel);
  const state = {
    key: localStorage.getItem(KEY_STORE) || "",
    tasks: new Map(), // client id -> task record
    pollTimer: null,
  };
  let nextClientId = 1;

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  function authHeaders() {
    return state.key ? { Authorization: `Bearer ${state.key}` } : {};
  }

  /** Options for a call on one task: its token, when this page submitted it. */
  function forTask(task, options = {}) {
    if (!task.token) return options;
    return { ...options, headers: { ...(options.headers || {}), "X-Task-Token": task.token } };
  }

  /** The service's error text, whatever the body shape ({error:{message}}, {detail}, text). */
  function messageFrom(body, status) {
    if (body && typeof body === "object") {
      const err = body.error;
      if (err && typeof err === "object" && err.message) return err.message;
      if (typeof err === "string" && err) return err;
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail) && body.detail.length) {
        return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
      }
      if (typeof body.message === "string") return body.message;
    }
    if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
    return `HTTP ${status}`;
  }

  async function readError(resp) {
    const text = await resp.text();
    try {
      return messageFrom(JSON.parse(text), resp.status);
    } catch {
      return messageFrom(text, resp.status);
    }
  }

  async function api(path, options = {}) {
    let resp;
    try {
      resp = await fetch(path, {
        cache: "no-store",
        ...options,
        headers: { ...authHeaders(), ...(options.headers || {}) },
      });
    } catch (err) {
      throw new ApiError("The service is unreachable.", 0);
    }
    if (resp.status === 401 || resp.status === 403) {
      const msg = await readError(resp);
      // A server without a key (ALLOW_ANONYMOUS) has no task list: that is no reason to ask for one.
      if (!options.quiet && !/no task list/.test(msg)) showAuth(state.key ? "The API key was rejected." : "");
      throw new ApiError(msg || "An API key is required.", resp.status);
    }
    if (!resp.ok) throw new ApiError(await readError(resp), resp.status);
    return resp;
  }

  // ---- API key -----------------------------------------------------------------------------

  function showAuth(message) {
    $("#auth").hidden = false;
    $("#auth-error").textContent = message || "";
  }

  async function checkAuth() {
    try {
      await api("/v1/tasks?limit=1");
      $("#auth").hidden = true;
      return true;
    } catch (err) {
      if (/no task list/.test(err.message)) return true; // anonymous server: tokens do the work
      return !(err.status === 401 || err.status === 403);
    }
  }

  $("#auth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.key = $("#api-key").value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    $("#auth-error").textContent = "";
    if (await checkAuth()) {
      $("#api-key").value = "";
      schedulePoll(0);
    }
  });

  // ---- model readiness (/ping) ----------------------------------------------------------------

  async function ping() {
    const el = $("#readiness");
    let stateName;
    let text;
    try {
      const resp = await fetch("/ping", { cache: "no-store" });
      if (resp.status === 200) {
        stateName = "ready";
        text = "Models ready";
      } else if (resp.status === 204) {
        stateName = "loading";
        text = "Models loading… tasks wait in the queue until they are ready";
      } else {
        stateName = "degraded";
        text = `Models unavailable: ${await readError(resp)}`;
      }
    } catch {
      stateName = "down";
      text = "Service unreachable";
    }
    if (el.textContent.trim() !== text) el.textContent = text;
    el.dataset.state = stateName;
    setTimeout(ping, PING_MS);
  }

  // ---- file selection -------------------------------------------------------------------------

  const fileInput = $("#files");
  const dropzone = $("#dropzone");

  function showSelected() {
    const list = $("#selected");
    list.replaceChildren();
    for (const file of fileInput.files) {
      const li = document.createElement("li");
      li.textContent = `${file.name} (${formatBytes(file.size)})`;
      list.append(li);
    }
  }

  fileInput.addEventListener("change", showSelected);
  dropzone.addEventListener("click", () => fileInput.click());
  dropzone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      fileInput.click();
    }
  });
  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("over");
    });
  }
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      fileInput.files = event.dataTransfer.files;
      showSelected();
    }
  });

  // ---- submission -----------------------------------------------------------------------------

  function readOptions() {
    const regions = $("#regions").value.trim();
    if (regions) {
      let parsed;
      try {
        parsed = JSON.parse(regions);
      } catch (err) {
        throw new Error(`Regions: not valid JSON (${err.message})`);
      }
      if (!Array.isArray(parsed)) throw new Error("Regions: expected a JSON list of boxes");
    }
    return { regions, detect: $("#detect").checked, method: $("#method").value };
  }

  /** POST one file; XMLHttpRequest because fetch() reports no upload progress. */
  function upload(file, options, onProgress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      form.append("video", file, file.name);
      if (options.regions) form.append("regions", options.regions);
      if (options.regions && options.detect) form.append("detect", "true");
      form.append("method", options.method);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/tasks");
      for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress((100 * e.loaded) / e.total);
      });
      xhr.addEventListener("load", () => {
        let body = xhr.responseText;
        try {
          body = JSON.parse(body);
        } catch { /* keep the text */ }
        if (xhr.status === 401 || xhr.status === 403) {
          showAuth(state.key ? "The API key was rejected." : "");
        }
        if (xhr.status >= 200 && xhr.status < 300 && body && body.task_id) resolve(body);
        else reject(new ApiError(messageFrom(body, xhr.status), xhr.status));
      });
      xhr.addEventListener("error", () => reject(new ApiError("The service is unreachable.", 0)));
      xhr.send(form);
    });
  }

  $("#upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const formError = $("#form-error");
    formError.textContent = "";
    const files = Array.from(fileInput.files);
    if (!files.length) {
      formError.textContent = "Choose at least one video first.";
      fileInput.focus();
      return;
    }
    let options;
    try {
      options = readOptions();
    } catch (err) {
      formError.textContent = err.message;
      $("#regions").focus();
      return;
    }
    fileInput.value = "";
    showSelected();
    // Upload one after another: the server queues them anyway, and the uplink is shared.
    for (const file of files) {
      const task = addTask({ name: file.name, file });
      render(task, { status: "uploading", progress: 0 });
      try {
        const body = await upload(file, options, (pct) => render(task, { status: "uploading", progress: pct }));
        task.id = body.task_id;
        task.token = body.token || null;
        saveTasks();
        render(task, { status: body.status || "queued", progress: 0 });
      } catch (err) {
        render(task, { status: "failed", progress: 0, error: `Upload failed: ${err.message}` });
      }
    }
    schedulePoll(0);
  });

  // ---- task list ------------------------------------------------------------------------------

  function saveTasks() {
    const saved = [...state.tasks.values()].filter((t) => t.id)
      .map((t) => ({ id: t.id, name: t.name, token: t.token || null }));
    localStorage.setItem(TASKS_STORE, JSON.stringify(saved));
  }

  function addTask({ name, file = null, id = null, token = null }) {
    const el = $("#task-template").content.firstElementChild.cloneNode(true);
    const task = { cid: nextClientId++, id, token, name, file, el, data: {}, resultUrl: null, beforeUrl: null };
    el.dataset.cid = String(task.cid);
    $(".task-name", el).textContent = name;
    $(".bar", el).setAttribute("aria-label", `Progress of ${name}`);
    // Each card repeats the same buttons: give them names that say which file they act on.
    $(".cancel", el).setAttribute("aria-label", `Cancel ${name}`);
    $(".forget", el).setAttribute("aria-label", `Remove ${name} from the list`);
    $(".play-both", el).setAttribute("aria-label", `Play before and after of ${name}`);
    $(".before video", el).setAttribute("aria-label", `${name} before`);
    $(".after video", el).setAttribute("aria-label", `${name} after removal`);
    $(".cancel", el).addEventListener("click", () => cancelTask(task));
    $(".forget", el).addEventListener("click", () => forgetTask(task));
    $(".play-both", el).addEventListener("click", () => {
      for (const v of el.querySelectorAll(".compare video")) {
        v.currentTime = 0;
        v.play().catch(() => {});
      }
    });
    state.tasks.set(task.cid, task);
    $("#tasks").prepend(el);
    $("#no-tasks").hidden = true;
    return task;
  }

  function statusText(data) {
    switch (data.status) {
      case "uploading":
        return "Uploading";
      case "queued":
        if (data.queue_position === 0) return "Queued: next in line";
        if (data.queue_position > 0) return `Queued: position ${data.queue_position + 1}`;
        return "Queued";
      case "processing":
        return data.stage ? `Processing: ${data.stage}` : "Processing";
      case "finished":
        return outcomeText(data.details).label;
      case "failed":
        return "Failed";
      case "cancelled":
        return "Cancelled";
      default:
        return data.status || "Unknown";
    }
  }

  // What the task found and did (details.outcome / details.marks from the pipeline).
  function outcomeText(details) {
    const info = details || {};
    const marks = (info.marks || []).filter((m) => m.method !== "untouched");
    if (info.outcome === "no watermark found") return { label: "Finished: no watermark found", summary: "", kind: "none" };
    if (info.outcome === "found, left untouched") {
      return { label: "Finished: nothing removed", summary: "a candidate showed no overlay and was left untouched", kind: "none" };
    }
    if (!info.outcome) return { label: "Finished", summary: "", kind: "removed" };
    const visits = marks.reduce((n, m) => n + ((m.visits || []).length || 1), 0);
    const methods = {};
    for (const m of marks) methods[m.method] = (methods[m.method] || 0) + 1;
    const how = Object.entries(methods).map(([k, v]) => `${k} ${v}`).join(", ");
    const groups = new Set(marks.map((m) => m.mark ?? 0)).size;
    const summary = marks.length
      ? `${groups} mark${groups === 1 ? "" : "s"}, ${marks.length} position${marks.length === 1 ? "" : "s"}, ${visits} visit${visits === 1 ? "" : "s"} (${how})`
      : "";
    return { label: "Finished: watermark removed", summary, kind: "removed" };
  }

  function render(task, data) {
    task.data = { ...task.data, ...data };
    const d = task.data;
    const el = task.el;
    const pct = Math.max(0, Math.min(100, Number(d.progress) || 0));
    const shown = d.status === "finished" ? 100 : pct;
    el.dataset.status = d.status;
    if (task.id) el.dataset.taskId = task.id;
    const status = statusText(d);
    const statusEl = $(".task-status", el);
    if (statusEl.textContent !== status) statusEl.textContent = status;
    const bar = $(".bar", el);
    bar.setAttribute("aria-valuenow", shown.toFixed(0));
    bar.setAttribute("aria-valuetext", `${shown.toFixed(0)}% – ${status}`);
    $(".bar-fill", el).style.width = `${shown}%`;
    const details = [`${shown.toFixed(0)}%`];
    if (d.status === "uploading") details[0] = `${shown.toFixed(0)}% uploaded`;
    // Live numbers while processing (details.progress), totals once finished (details).
    const info = (d.details && (d.status === "processing" ? d.details.progress : d.details)) || {};
    if (d.status === "processing" && info.frames_total) details.push(`frame ${info.frames_done || 0} of ${info.frames_total}`);
    if (d.status === "finished" && info.frames) details.push(`${info.frames} frames`);
    if (d.status === "finished") {
      const found = outcomeText(d.details);
      el.dataset.outcome = found.kind;
      if (found.summary) details.push(found.summary);
    }
    if (info.fps) details.push(`${Number(info.fps).toFixed(1)} fps`);
    $(".task-detail", el).textContent = details.join(" · ");
    const errorEl = $(".task-error", el);
    const error = d.status === "failed" || d.status === "cancelled" ? d.error || "" : "";
    if (errorEl.textContent !== error) errorEl.textContent = error;
    const terminal = TERMINAL.has(d.status);
    $(".cancel", el).hidden = terminal || !task.id;
    $(".forget", el).hidden = !terminal;
  }

  async function loadResult(task) {
    if (task.resultUrl || task.loadingResult) return;
    task.loadingResult = true;
    const el = task.el;
    try {
      const path = task.data.result_url || `/v1/tasks/${encodeURIComponent(task.id)}/result`;
      // <video src> cannot send the Authorization header: fetch the file and use an object URL.
      const blob = await (await api(path, forTask(task))).blob();
      task.resultUrl = URL.createObjectURL(blob);
      const link = $(".download", el);
      link.href = task.resultUrl;
      link.download = cleanName(task.name);
      link.textContent = `Download ${cleanName(task.name)} (${formatBytes(blob.size)})`;
      link.hidden = false;
      $(".after video", el).src = task.resultUrl;
      if (task.file) {
        task.beforeUrl = URL.createObjectURL(task.file);
        $(".before video", el).src = task.beforeUrl;
      } else {
        $(".before", el).hidden = true;
      }
      $(".compare", el).hidden = false;
      $(".play-both", el).hidden = !task.file;
      el.dataset.result = "ready";
    } catch (err) {
      $(".task-error", el).textContent = `Could not fetch the result: ${err.message}`;
    } finally {
      task.loadingResult = false;
    }
  }

  async function cancelTask(task) {
    if (!task.id) return;
    try {
      const body = await (await api(`/v1/tasks/${encodeURIComponent(task.id)}`,
        forTask(task, { method: "DELETE" }))).json();
      if (body.status === "cancelled") render(task, { status: "cancelled", error: "Cancelled by you." });
      else {
        $(".task-detail", task.el).textContent = body.message || "Cancel requested.";
        schedulePoll(0);
      }
    } catch (err) {
      $(".task-error", task.el).textContent = `Cancel failed: ${err.message}`;
    }
  }

  async function forgetTask(task) {
    if (task.id) {
      // Also deletes the server's copy of the files; a task already gone is fine.
      await api(`/v1/tasks/${encodeURIComponent(task.id)}`, forTask(task, { method: "DELETE" })).catch(() => {});
    }
    for (const url of [task.resultUrl, task.beforeUrl]) if (url) URL.revokeObjectURL(url);
    task.el.remove();
    state.tasks.delete(task.cid);
    saveTasks();
    $("#no-tasks").hidden = state.tasks.size > 0;
  }

  /** Queue positions (0 = next) from the queued list, newest first: position = total - 1 - index. */
  async function queuePositions(ids) {
    const positions = new Map();
    try {
      const body = await (await api("/v1/tasks?status=queued&limit=200", { quiet: true })).json();
      const items = Array.isArray(body) ? body : body.items || [];
      const total = Number.isInteger(body.total) ? body.total : items.length;
      items.forEach((t, i) => {
        if (t.status === "queued" && ids.includes(t.task_id)) positions.set(t.task_id, total - 1 - i);
      });
    } catch { /* position is a nicety; the status still shows */ }
    return positions;
  }

  async function poll() {
    state.pollTimer = null;
    const active = [...state.tasks.values()].filter((t) => t.id && !TERMINAL.has(t.data.status));
    const needPositions = [];
    for (const task of active) {
      try {
        const data = await (await api(`/v1/tasks/${encodeURIComponent(task.id)}`, forTask(task))).json();
        render(task, data);
        if (data.status === "queued" && data.queue_position === undefined) needPositions.push(task);
        if (data.status === "finished") loadResult(task);
      } catch (err) {
        if (err.status === 404) render(task, { status: "failed", error: "The service no longer knows this task." });
        else if (err.status === 401 || err.status === 403) break;
        else $(".task-detail", task.el).textContent = `Waiting for the service: ${err.message}`;
      }
    }
    if (needPositions.length) {
      const positions = await queuePositions(needPositions.map((t) => t.id));
      for (const task of needPositions) {
        if (positions.has(task.id)) render(task, { queue_position: positions.get(task.id) });
      }
    }
    for (const task of state.tasks.values()) {
      if (task.data.status === "finished" && !task.resultUrl) loadResult(task);
    }
    if ([...state.tasks.values()].some((t) => t.id && !TERMINAL.has(t.data.status))) schedulePoll(POLL_MS);
  }

  function schedulePoll(delay) {
    if (state.pollTimer) clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(poll, delay);
  }

  // ---- helpers --------------------------------------------------------------------------------

  function cleanName(name) {
    const dot = name.lastIndexOf(".");
    return `${dot > 0 ? name.slice(0, dot) : name}.clean.mp4`;
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  // ---- start ----------------------------------------------------------------------------------

  function restoreTasks() {
    let saved = [];
    try {
      saved = JSON.parse(localStorage.getItem(TASKS_STORE) || "[]");
    } catch { /* ignore a corrupt entry */ }
    for (const { id, name, token } of saved) {
      if (typeof id !== "string") continue;
      const task = addTask({ id, name: String(name || id), token: typeof token === "string" ? token : null });
      render(task, { status: "queued", progress: 0 });
    }
  }

  ping();
  restoreTasks();
  checkAuth().then(() => schedulePoll(0));
})();
