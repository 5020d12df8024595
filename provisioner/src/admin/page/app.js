// The status page: one page of the fleet at a time, filtered, sorted and paged by the server
// (/api/v1/fleet), polled through its change marker so nothing reloads; a side panel with the
// node's own address (#/node/KEY); refused nodes with a one-click registration.
// Everything is rendered with textContent only, so nothing the API returns (serials, log
// lines, failure messages) is ever interpreted as HTML.
"use strict";

const POLL_MS = 2000;
const PAGE_SIZE = 100;
const TOKEN_KEY = "provisioner-admin-token";
// Failed first: what an operator must act on leads.
const FILTERS = ["failed", "refused", "provisioning", "discovered", "registered", "provisioned", "all"];
const LABELS = { provisioning: "running" };

const view = { state: "all", q: "", sort: "state", order: "asc", offset: 0, node: null };
let marker = null;
let lastLogSeq = 0;
let logNode = null;
let profiles = [];
let polling = false;
// A refresh asked for while one was in flight (the operator clicked during a poll): run it
// as soon as that one ends, not at the next poll 2 s later.
let refreshAgain = false;
// Counts the operator's changes of view, so that an answer for the view before is dropped.
let viewVersion = 0;

// The address holds the view: "#/node/KEY?state=failed&q=HUX". Automation and old links may
// pass "#token=...&node=KEY": the token moves to sessionStorage and leaves the address bar
// (and history) at once.
function readHash() {
  const hash = location.hash.slice(1);
  const [path, query = ""] = hash.startsWith("/") ? hash.slice(1).split("?", 2) : ["", hash];
  const params = new URLSearchParams(query);
  const token = params.get("token");
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  const legacyNode = params.get("node");
  view.node = path.startsWith("node/") ? decodeURIComponent(path.slice(5)) : legacyNode;
  view.state = FILTERS.includes(params.get("state")) ? params.get("state") : "all";
  view.q = params.get("q") || "";
  view.sort = params.get("sort") || "state";
  view.order = params.get("order") === "desc" ? "desc" : "asc";
  view.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  if (token || legacyNode) writeHash();
}

function writeHash() {
  const params = new URLSearchParams();
  if (view.state !== "all") params.set("state", view.state);
  if (view.q) params.set("q", view.q);
  if (view.sort !== "state") params.set("sort", view.sort);
  if (view.order !== "asc") params.set("order", view.order);
  if (view.offset) params.set("offset", String(view.offset));
  const path = view.node ? "/node/" + encodeURIComponent(view.node) : "/";
  const query = params.toString();
  history.replaceState(null, "", location.pathname + "#" + path + (query ? "?" + query : ""));
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...authHeaders() };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    showLogin(true);
    throw new Error("not signed in");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && body.error ? body.error : response.statusText);
  return body;
}

function showLogin(needed) {
  document.getElementById("login").hidden = !needed;
  document.getElementById("forget").hidden = needed || !sessionStorage.getItem(TOKEN_KEY);
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function stateBadge(state) {
  const span = document.createElement("span");
  span.className = "state state-" + state;
  span.textContent = state;
  return span;
}

function ago(at) {
  if (!at) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(at)) / 1000);
  if (seconds < 60) return Math.round(seconds) + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h ago";
  return Math.round(seconds / 86400) + " d ago";
}

function took(ms) {
  if (ms == null) return "";
  const seconds = ms / 1000;
  if (seconds < 60) return seconds.toFixed(1) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
  return (seconds / 3600).toFixed(1) + " h";
}

function stepText(progress) {
  if (!progress) return "";
  const state = progress.state === "SUCCESS" || progress.state === "RUNNING" ? "" : " (" + progress.state.toLowerCase() + ")";
  return progress.position + "/" + progress.total + ": " + progress.action + state;
}

function renderFilters(counts) {
  const nav = document.getElementById("filters");
  nav.replaceChildren();
  for (const state of FILTERS) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "filter filter-" + state + (view.state === state ? " active" : "");
    button.dataset.state = state;
    button.setAttribute("aria-pressed", String(view.state === state));
    const count = document.createElement("b");
    count.textContent = String(counts[state] || 0);
    button.append(count, " " + (LABELS[state] || state));
    button.addEventListener("click", () => {
      view.state = state;
      view.offset = 0;
      changed();
    });
    nav.append(button);
  }
  document.getElementById("summary").textContent = (counts.all || 0) + " nodes";
}

function renderNodes(page) {
  const body = document.getElementById("nodes");
  body.replaceChildren();
  for (const node of page.nodes) {
    const row = body.insertRow();
    row.dataset.node = node.id;
    if (view.node === node.id || node.macs.includes(view.node)) row.classList.add("selected");
    row.insertCell().append(stateBadge(node.state));
    cell(row, node.hostname);
    cell(row, node.serial, "mono");
    cell(row, node.macs.join(", "), "mono");
    cell(row, node.ip, "mono");
    cell(row, node.uuid, "mono uuid");
    cell(row, node.profile);
    // The action and its state only: the failure has its own column, shown once.
    const progress = cell(row, stepText(node.progress), "progress");
    if (node.progress_text) progress.title = node.progress_text;
    const seen = cell(row, ago(node.last_seen));
    if (node.last_seen) seen.title = node.last_seen;
    cell(row, took(node.duration_ms), "number");
    // Once, cut to the column's width; the whole text is in the title and the detail.
    const failure = cell(row, node.failure, "failure");
    if (node.failure) failure.title = node.failure;
    row.addEventListener("click", () => openNode(node.id));
  }
  const first = page.total === 0 ? 0 : page.offset + 1;
  const last = Math.min(page.offset + page.nodes.length, page.total);
  document.getElementById("range").textContent = first + "–" + last + " of " + page.total;
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = last >= page.total;
  document.getElementById("empty").hidden = page.counts.all > 0;
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.classList.toggle("sorted", th.dataset.sort === view.sort);
    th.classList.toggle("desc", th.dataset.sort === view.sort && view.order === "desc");
  }
}

function profileSelect() {
  const select = document.createElement("select");
  select.setAttribute("aria-label", "Profile to register with");
  for (const profile of profiles) {
    const option = document.createElement("option");
    option.value = profile.name;
    option.textContent = profile.name;
    option.selected = Boolean(profile.default);
    select.append(option);
  }
  return select;
}

function renderRefusals(refusals) {
  const body = document.getElementById("refusals");
  body.replaceChildren();
  for (const refusal of refusals) {
    const row = body.insertRow();
    row.dataset.refusal = refusal.key;
    const at = cell(row, ago(refusal.last_at));
    at.title = refusal.last_at;
    cell(row, refusal.mac, "mono");
    cell(row, refusal.serial, "mono");
    cell(row, refusal.uuid, "mono uuid");
    cell(row, refusal.ip, "mono");
    cell(row, refusal.source);
    const reason = cell(row, refusal.reason, "reason");
    reason.title = refusal.reason;
    cell(row, refusal.count, "number");
    const actions = row.insertCell();
    const select = profileSelect();
    const button = document.createElement("button");
    button.type = "button";
    button.className = "register";
    button.textContent = "Register this node";
    button.disabled = profiles.length === 0;
    button.addEventListener("click", () => register(refusal, select.value, button));
    actions.append(select, button);
  }
  document.getElementById("range").textContent = refusals.length + " refused";
  document.getElementById("prev").disabled = true;
  document.getElementById("next").disabled = true;
}

async function register(refusal, profile, button) {
  button.disabled = true;
  const spec = { profile };
  for (const field of ["mac", "serial", "uuid"]) if (refusal[field]) spec[field] = refusal[field];
  try {
    await api("/api/v1/registrations", { method: "POST", body: JSON.stringify(spec) });
    setStatus("");
    document.getElementById("updated").textContent =
      "registered " + (refusal.serial || refusal.mac || refusal.uuid) + " with " + profile;
    marker = null;
    refresh();
  } catch (error) {
    button.disabled = false;
    setStatus("registering failed: " + error.message);
  }
}

// At most two lines, the whole text in the title: a long failure is shown in full once, in
// the failure box above, not again in each action and event that carries it.
function listItem(list, text, className) {
  const item = document.createElement("li");
  const clamped = document.createElement("span");
  clamped.className = "clamped";
  clamped.textContent = text;
  item.append(clamped);
  item.title = text;
  if (className) item.className = className;
  list.append(item);
  return item;
}

function fact(list, name, value) {
  if (value == null || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = String(value);
  list.append(dt, dd);
}

function renderDetail(node) {
  const panel = document.getElementById("detail");
  panel.hidden = false;
  document.body.classList.add("with-detail");
  document.getElementById("detail-title").textContent = node.hostname || node.serial || node.id;
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  const state = document.createElement("dd");
  state.append(stateBadge(node.state));
  const stateName = document.createElement("dt");
  stateName.textContent = "State";
  facts.append(stateName, state);
  fact(facts, "Serial", node.serial);
  fact(facts, "MAC", node.macs.join(", "));
  fact(facts, "UUID", node.uuid);
  fact(facts, "IP", node.ip);
  fact(facts, "Profile", node.profile);
  // The step only: the failure follows in its own box.
  fact(facts, "Progress", stepText(node.progress));
  fact(facts, "Id", node.id);
  const failure = document.getElementById("detail-failure");
  failure.textContent = node.failure || "";
  failure.hidden = !node.failure;
  const actions = document.getElementById("actions");
  actions.replaceChildren();
  for (const action of node.workflow ? node.workflow.actions : []) {
    const duration = action.duration_ms == null ? "" : " (" + took(action.duration_ms) + ")";
    const why = action.message ? ": " + action.message : "";
    listItem(actions, action.name + " " + action.state + duration + why, "action-" + action.state);
  }
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren();
  for (const event of node.timeline) {
    listItem(timeline, event.at + " " + event.kind + (event.message ? ": " + event.message : ""));
  }
}

function closeDetail() {
  view.node = null;
  document.getElementById("detail").hidden = true;
  document.body.classList.remove("with-detail");
  writeHash();
  for (const row of document.querySelectorAll("#nodes tr.selected")) row.classList.remove("selected");
}

async function pollLogs() {
  if (!view.node) return;
  if (logNode !== view.node) {
    logNode = view.node;
    lastLogSeq = 0;
    document.getElementById("logs").replaceChildren();
  }
  const lines = await api("/api/v1/nodes/" + encodeURIComponent(view.node) + "/logs?after=" + lastLogSeq + "&limit=500");
  if (lines.length === 0) return;
  const text = lines.map((line) => line.received_at + " " + line.source + ": " + line.text).join("\n") + "\n";
  const logs = document.getElementById("logs");
  logs.append(document.createTextNode(text));
  if (document.getElementById("follow").checked) logs.scrollTop = logs.scrollHeight;
  lastLogSeq = lines[lines.length - 1].seq;
}

function openNode(id) {
  view.node = id;
  writeHash();
  for (const row of document.querySelectorAll("#nodes tr")) row.classList.toggle("selected", row.dataset.node === id);
  refreshDetail();
}

async function refreshDetail() {
  if (!view.node) return;
  try {
    renderDetail(await api("/api/v1/nodes/" + encodeURIComponent(view.node)));
    await pollLogs();
  } catch (error) {
    setStatus(error.message);
  }
}

// The site's trust setting, read from the one place it is exported (/metrics), so the page
// and Prometheus can never disagree.
async function renderTrust() {
  const response = await fetch("/metrics", { headers: authHeaders() });
  if (!response.ok) return;
  const text = await response.text();
  const allowed = /^provisioner_unauthenticated_workers_allowed 1$/m.test(text);
  const banner = document.getElementById("unauthenticated-workers");
  banner.textContent = allowed
    ? "Unauthenticated workers allowed (serve --allow-unauthenticated-workers): any machine on the site network can fetch any node's actions and report them done."
    : "";
  banner.hidden = !allowed;
}

function fleetQuery() {
  const params = new URLSearchParams({ sort: view.sort, order: view.order, offset: String(view.offset), limit: String(PAGE_SIZE) });
  if (view.state !== "all" && view.state !== "refused") params.set("state", view.state);
  if (view.q) params.set("q", view.q);
  if (marker) params.set("since", marker);
  return "/api/v1/fleet?" + params;
}

// One poll: the fleet only when its marker moved (or the view changed), the open node's logs
// always (they are not part of the marker).
async function refresh() {
  if (polling) {
    refreshAgain = true;
    return;
  }
  polling = true;
  refreshAgain = false;
  const asked = viewVersion;
  try {
    const page = await api(fleetQuery());
    showLogin(false);
    // The view changed while this was in flight: the answer is the old view's (and its
    // marker would hide the new one's first page); the refresh asked for then runs next.
    if (asked !== viewVersion) return;
    if (!page.unchanged) {
      const first = marker === null;
      marker = page.marker;
      renderFilters(page.counts);
      const refused = view.state === "refused";
      document.getElementById("fleet-table").hidden = refused;
      document.getElementById("refused-table").hidden = !refused;
      if (refused) {
        if (profiles.length === 0) profiles = await api("/api/v1/profiles");
        renderRefusals(await api("/api/v1/refusals"));
      } else {
        renderNodes(page);
      }
      if (first) await renderTrust();
      if (view.node) renderDetail(await api("/api/v1/nodes/" + encodeURIComponent(view.node)));
    }
    await pollLogs();
    setStatus("");
  } catch (error) {
    setStatus(error.message);
  } finally {
    polling = false;
    if (refreshAgain) refresh();
  }
}

// The view changed: fetch at once, whatever the marker.
function changed() {
  viewVersion += 1;
  marker = null;
  writeHash();
  refresh();
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  changed();
});

document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(true);
});

let searchTimer = null;
document.getElementById("search").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    view.q = event.target.value.trim();
    view.offset = 0;
    // The search covers the fleet, not the refused list.
    if (view.q && view.state === "refused") view.state = "all";
    changed();
  }, 200);
});

for (const th of document.querySelectorAll("th[data-sort]")) {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    view.order = view.sort === key && view.order === "asc" ? "desc" : "asc";
    view.sort = key;
    view.offset = 0;
    changed();
  });
}

document.getElementById("prev").addEventListener("click", () => {
  view.offset = Math.max(0, view.offset - PAGE_SIZE);
  changed();
});
document.getElementById("next").addEventListener("click", () => {
  view.offset += PAGE_SIZE;
  changed();
});
document.getElementById("close").addEventListener("click", closeDetail);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && view.node) closeDetail();
});
window.addEventListener("hashchange", () => {
  readHash();
  changed();
  refreshDetail();
});

document.getElementById("reprovision").addEventListener("click", async () => {
  if (!view.node || !confirm("Install this node again at its next PXE boot?")) return;
  try {
    await api("/api/v1/nodes/" + encodeURIComponent(view.node) + "/reprovision", { method: "POST" });
    changed();
  } catch (error) {
    setStatus(error.message);
  }
});

readHash();
document.getElementById("search").value = view.q;
refresh();
setInterval(refresh, POLL_MS);
