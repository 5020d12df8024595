// The status page: polls the admin API and renders with textContent only, so nothing the API
// returns (names, log lines, failure messages) is ever interpreted as HTML.
"use strict";

const POLL_MS = 4000;
const TOKEN_KEY = "provisioner-admin-token";
let selected = null;
let lastLogSeq = 0;

// Automation and links may pass "#token=...&node=KEY": the token moves to sessionStorage and
// leaves the address bar (and history) at once.
function takeFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    params.delete("token");
  }
  selected = params.get("node");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + (rest ? "#" + rest : ""));
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
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

function renderNodes(nodes) {
  const body = document.getElementById("nodes");
  body.replaceChildren();
  const counts = {};
  for (const node of nodes) {
    counts[node.state] = (counts[node.state] || 0) + 1;
    const row = body.insertRow();
    row.dataset.node = node.id;
    if (node.id === selected) row.classList.add("selected");
    cell(row, node.macs.join(", "));
    cell(row, node.serial);
    cell(row, node.uuid, "uuid");
    cell(row, node.profile);
    row.insertCell().append(stateBadge(node.state));
    cell(row, node.progress_text);
    cell(row, node.failure, "failure");
    row.addEventListener("click", () => select(node.id));
  }
  document.getElementById("empty").hidden = nodes.length > 0;
  document.getElementById("summary").textContent = Object.entries(counts)
    .map(([state, count]) => count + " " + state).join(" · ");
}

function listItem(list, text, className) {
  const item = document.createElement("li");
  item.textContent = text;
  if (className) item.className = className;
  list.append(item);
}

function renderDetail(node) {
  document.getElementById("detail").hidden = false;
  const identity = [node.macs.join(", "), node.serial, node.uuid].filter(Boolean).join(" · ");
  document.getElementById("detail-title").textContent = identity || node.id;
  const actions = document.getElementById("actions");
  actions.replaceChildren();
  for (const action of node.workflow ? node.workflow.actions : []) {
    const took = action.duration_ms == null ? "" : " (" + (action.duration_ms / 1000).toFixed(1) + " s)";
    const why = action.message ? ": " + action.message : "";
    listItem(actions, action.name + " " + action.state + took + why, "action-" + action.state);
  }
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren();
  for (const event of node.timeline) {
    listItem(timeline, event.at + " " + event.kind + (event.message ? ": " + event.message : ""));
  }
}

async function pollLogs() {
  const lines = await api("/api/v1/nodes/" + encodeURIComponent(selected) + "/logs?after=" + lastLogSeq + "&limit=500");
  if (lines.length === 0) return;
  const text = lines.map((line) => line.received_at + " " + line.source + ": " + line.text).join("\n") + "\n";
  const logs = document.getElementById("logs");
  logs.append(document.createTextNode(text));
  logs.scrollTop = logs.scrollHeight;
  lastLogSeq = lines[lines.length - 1].seq;
}

function select(id) {
  selected = id;
  lastLogSeq = 0;
  document.getElementById("logs").replaceChildren();
  history.replaceState(null, "", location.pathname + "#node=" + encodeURIComponent(id));
  refresh();
}

// The site's trust setting, read from the one place it is exported (/metrics), so the page
// and Prometheus can never disagree.
async function renderTrust() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch("/metrics", { headers });
  if (!response.ok) return;
  const text = await response.text();
  const allowed = /^provisioner_unauthenticated_workers_allowed 1$/m.test(text);
  const banner = document.getElementById("unauthenticated-workers");
  banner.textContent = allowed
    ? "Unauthenticated workers allowed (serve --allow-unauthenticated-workers): any machine on the site network can fetch any node's actions and report them done."
    : "";
  banner.hidden = !allowed;
}

async function refresh() {
  try {
    renderNodes(await api("/api/v1/nodes"));
    await renderTrust();
    if (selected) {
      renderDetail(await api("/api/v1/nodes/" + encodeURIComponent(selected)));
      await pollLogs();
    }
    showLogin(false);
    setStatus("");
  } catch (error) {
    setStatus(error.message);
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  refresh();
});

document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(true);
});

document.getElementById("reprovision").addEventListener("click", async () => {
  if (!selected || !confirm("Install this node again at its next PXE boot?")) return;
  try {
    await api("/api/v1/nodes/" + encodeURIComponent(selected) + "/reprovision", { method: "POST" });
    refresh();
  } catch (error) {
    setStatus(error.message);
  }
});

takeFragment();
refresh();
setInterval(refresh, POLL_MS);
