/* The dashboard shell: token, API calls, hash routes. Pages live in pages.js. */
(() => {
"use strict";

const TOKEN_KEY = "vision-evald-token";
const App = { timers: [], objectUrls: [] };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return el;
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function request(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json", ...authHeaders() } });
  if (resp.status === 401) {
    showTokenForm(true);
    throw new ApiError(401, "this daemon needs a bearer token: enter it above");
  }
  if (!resp.ok) {
    let detail = `${resp.status} ${resp.statusText}`;
    try { detail = (await resp.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new ApiError(resp.status, detail);
  }
  return resp;
}

async function api(path) {
  return (await request(path)).json();
}

/* An image of an evaluation as an object URL (fetched with the token) and its natural size. */
async function imageUrl(evalId, name) {
  const path = `/v1/vision/evaluations/${evalId}/images/${name.split("/").map(encodeURIComponent).join("/")}`;
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  App.objectUrls.push(url);
  const img = new Image();
  img.src = url;
  await img.decode();
  return { url, width: img.naturalWidth, height: img.naturalHeight };
}

function showTokenForm(show) {
  document.getElementById("token-form").hidden = !show;
}

function updateAuthState() {
  document.getElementById("auth-state").textContent = sessionStorage.getItem(TOKEN_KEY)
    ? "token set for this session" : "";
}

function every(ms, fn) {
  App.timers.push(setInterval(fn, ms));
}

function q(name) {
  const hash = location.hash.replace(/^#/, "");
  const i = hash.indexOf("?");
  return i < 0 ? null : new URLSearchParams(hash.slice(i + 1)).get(name);
}

const ROUTES = [
  [/^\/?(leaderboard)?$/, () => Pages.leaderboard()],
  [/^\/models$/, () => Pages.models()],
  [/^\/models?\/([^/]+)$/, (m) => Pages.model(decodeURIComponent(m[1]))],
  [/^\/(?:eval|evaluations?)\/(\d+)$/, (m) => Pages.evaluation(Number(m[1]))],
  [/^\/compar(?:e|ison)s?\/([^/]+)$/, (m) => Pages.comparison(decodeURIComponent(m[1]))],
  [/^\/jobs$/, () => Pages.jobs()],
];

/* A daemon that cannot do its work says why (``reason`` of /healthz) above every page. */
async function showHealth() {
  const banner = document.getElementById("health");
  try {
    const health = await (await fetch("/healthz")).json();
    banner.textContent = health.ok ? "" : `The daemon is not healthy: ${health.reason || "see /healthz"}`;
    banner.hidden = Boolean(health.ok);
  } catch (e) {
    banner.textContent = `The daemon does not answer: ${e.message}`;
    banner.hidden = false;
  }
}

async function route() {
  showHealth();
  if (App.authRequired === undefined) {
    try { App.authRequired = (await (await fetch("/dashboard/session")).json()).auth_required; } catch (e) { App.authRequired = false; }
  }
  App.timers.forEach(clearInterval);
  App.timers = [];
  App.objectUrls.forEach((u) => URL.revokeObjectURL(u));
  App.objectUrls = [];
  const path = location.hash.replace(/^#/, "").split("?")[0];
  const view = document.getElementById("view");
  const found = ROUTES.find(([re]) => re.test(path));
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  if (App.authRequired && !sessionStorage.getItem(TOKEN_KEY)) {
    showTokenForm(true);
    view.replaceChildren(h("p", {}, "This daemon needs its bearer token: enter it above (once per browser session)."));
    view.dataset.loaded = "needs-token";
    return;
  }
  if (!found) {
    view.replaceChildren(h("p", { class: "error" }, `No page at #${path}`));
    return;
  }
  try {
    const page = await found[1](path.match(found[0]));
    view.replaceChildren(page);
    view.dataset.loaded = path || "/";
  } catch (e) {
    view.replaceChildren(h("p", { class: "error" }, `Could not load this page: ${e.message}`));
    view.dataset.loaded = "error";
  }
}

document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = document.getElementById("token-input").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  showTokenForm(false);
  updateAuthState();
  route();
});
window.addEventListener("hashchange", route);
window.Dash = { h, api, imageUrl, every, q, ApiError };
updateAuthState();
route();
})();
