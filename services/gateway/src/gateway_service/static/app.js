// relayshop console: talks only to the gateway's /bff/* routes, never sees a token.
//
// The session is an HttpOnly cookie the browser sends by itself. The only secret this script
// holds is the session's CSRF token (from GET /bff/session), echoed in X-CSRF-Token on every
// state-changing request: a page of another site cannot read it, so it cannot forge one.
// Every value from the server is put into the page with textContent, never as HTML.
"use strict";

const PASSWORDS = {
  // The public demo accounts of the README (refused when RELAYSHOP_ENV=production).
  alice: "alice-password",
  bob: "bob-password",
  carol: "carol-password",
  walt: "walt-password",
  admin: "admin-password",
};
const SERVICES = ["gateway", "orders", "inventory", "payments", "auth"];
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

const state = { session: null, products: [], inspecting: 0, spans: [] };
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function say(message, kind = "info") {
  const toast = $("toast");
  toast.textContent = message;
  toast.dataset.kind = kind;
  toast.classList.add("visible");
  clearTimeout(say.timer);
  say.timer = setTimeout(() => toast.classList.remove("visible"), 6000);
}

// -- talking to the BFF -------------------------------------------------------------------
async function bff(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf_token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { status: response.status, ok: response.ok, data, traceId: response.headers.get("X-Trace-Id") };
}

// A call through the gateway to the services: its trace goes to the hop inspector, unless it
// is only a refresh of the lists after the request the user is looking at.
async function api(method, path, body, quiet = false) {
  const answer = await bff(method, "/bff/api" + path, body);
  if (answer.status === 401) await loadSession();
  if (!quiet) inspect(method, path, answer);
  return answer;
}

function problem(answer) {
  return (answer.data && (answer.data.detail || answer.data.title)) || `HTTP ${answer.status}`;
}

// -- session ------------------------------------------------------------------------------
async function loadSession() {
  const answer = await bff("GET", "/bff/session");
  state.session = answer.data && answer.data.signed_in ? answer.data : null;
  renderWho();
}

function renderWho() {
  const session = state.session;
  $("who-text").textContent = session
    ? `Signed in as ${session.username} (${session.roles.join(", ")})`
    : "Not signed in";
  $("logout").hidden = !session;
  for (const button of document.querySelectorAll(".account")) {
    button.setAttribute("aria-pressed", String(!!session && button.dataset.user === session.username));
  }
}

async function signIn(username) {
  const answer = await bff("POST", "/bff/login", { username, password: PASSWORDS[username] });
  if (!answer.ok) {
    say(`Sign-in failed: ${problem(answer)}`, "error");
    return;
  }
  state.session = answer.data;
  renderWho();
  $("revocation").hidden = true;
  say(`Signed in as ${username}. The tokens stay at the gateway.`);
  await loadProducts();
  await loadOrders();
}

// "Sign in with <name>" for each trusted identity provider the gateway offers: a plain link,
// since the sign-in is a series of redirects (routes/oidc.py) that ends back here, signed in.
async function loadProviders() {
  const answer = await bff("GET", "/console/oidc/providers");
  const providers = (answer.ok && answer.data && answer.data.providers) || [];
  const links = providers.map((provider) =>
    el("a", {
      class: "account idp",
      href: "/console/oidc/login?" + new URLSearchParams({ issuer: provider.issuer }),
      text: `Sign in with ${provider.name}`,
    }),
  );
  $("idps").replaceChildren(...links);
  $("idps").hidden = links.length === 0;
  // A failed sign-in comes back as ?signin_error=<code>: say so, then tidy the address bar.
  const error = new URLSearchParams(window.location.search).get("signin_error");
  if (error) {
    say(`Sign-in at the identity provider failed: ${error}`, "error");
    history.replaceState(null, "", "/");
  }
}

async function logOut() {
  const answer = await bff("POST", "/bff/logout");
  state.session = null;
  renderWho();
  clearShop();
  if (!answer.ok) {
    say(`Logout: ${problem(answer)}`, "error");
    return;
  }
  if (answer.data && answer.data.end_session) {
    // Signed in at an identity provider: end its session too; it sends the browser back here.
    window.location.assign(answer.data.end_session);
    return;
  }
  say("Logged out: the gateway revoked the tokens at auth.");
  if (answer.data && answer.data.revocation_check) await revocationCheck(answer.data.revocation_check);
}

async function revocationCheck(id) {
  const answer = await bff("POST", "/bff/demo/revocation-check", { id });
  const rows = $("revocation-rows");
  rows.replaceChildren();
  $("revocation").hidden = false;
  if (!answer.ok) {
    rows.append(el("tr", {}, el("td", { colspan: "4", text: problem(answer) })));
    return;
  }
  for (const hop of answer.data.hops) {
    const refused = hop.status === 401;
    rows.append(
      el(
        "tr",
        { class: "hop-result", data: { service: hop.hop, status: String(hop.status) } },
        el("td", {}, el("span", { class: `svc svc-${hop.hop}`, text: hop.hop })),
        el("td", { class: "mono", text: `GET ${hop.path}` }),
        el("td", {}, el("span", { class: `badge ${refused ? "deny" : "allow"}`, text: String(hop.status) })),
        el("td", { class: "muted", text: hop.detail }),
      ),
    );
  }
  say(answer.data.refused_everywhere ? "Refused at every hop: 401 four times." : "Not refused everywhere!",
    answer.data.refused_everywhere ? "info" : "error");
}

// -- shop ---------------------------------------------------------------------------------
function clearShop() {
  $("products").replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "Sign in to see the products." })));
  $("orders").replaceChildren(el("li", { class: "muted", text: "No orders yet." }));
  $("sku").replaceChildren();
}

async function loadProducts(quiet = false) {
  const answer = await api("GET", "/inventory/products", undefined, quiet);
  if (!answer.ok) return;
  state.products = answer.data;
  const body = $("products");
  body.replaceChildren();
  const select = $("sku");
  select.replaceChildren();
  for (const product of answer.data) {
    body.append(
      el(
        "tr",
        { data: { sku: product.sku } },
        el("td", { class: "mono", text: product.sku }),
        el("td", { text: product.name }),
        el("td", { class: "num", text: money.format(product.price_cents / 100) }),
        el("td", { class: `num ${product.stock === 0 ? "out" : ""}`, text: String(product.stock) }),
      ),
    );
    select.append(el("option", { value: product.sku, text: `${product.name} (${money.format(product.price_cents / 100)})` }));
  }
}

async function loadOrders(quiet = true) {
  const answer = await api("GET", "/orders", undefined, quiet);
  if (!answer.ok) return;
  const list = $("orders");
  list.replaceChildren();
  if (!answer.data.length) list.append(el("li", { class: "muted", text: "No orders yet." }));
  for (const order of answer.data.slice().reverse()) {
    const items = (order.items || []).map((i) => `${i.quantity} × ${i.sku}`).join(", ");
    list.append(
      el(
        "li",
        { class: "order", data: { id: order.id, status: order.status } },
        el("span", { class: `pill pill-${order.status}`, text: order.status }),
        el("span", { class: "mono", text: order.id.slice(0, 8) }),
        el("span", { class: "items", text: items }),
        el("span", { class: "num", text: money.format((order.total_cents || 0) / 100) }),
      ),
    );
  }
}

async function placeOrder(event) {
  event.preventDefault();
  const body = {
    items: [{ sku: $("sku").value, quantity: Number($("quantity").value) }],
    payment_method: $("payment").value,
  };
  const answer = await api("POST", "/orders", body);
  if (answer.status === 201) say(`Order ${answer.data.status}: ${money.format(answer.data.total_cents / 100)}.`);
  else say(`Order refused (${answer.status}): ${problem(answer)}`, "error");
  await loadProducts(true);
  await loadOrders(true);
}

// -- refusal demos ------------------------------------------------------------------------
async function demoForeign() {
  const found = await bff("GET", "/bff/demo/foreign-order");
  if (!found.ok) {
    say(problem(found), "error");
    return;
  }
  const answer = await api("GET", `/orders/${encodeURIComponent(found.data.order_id)}`);
  say(answer.status === 404 ? "404: orders checked ownership; a stranger's order does not exist for you."
    : `Answer ${answer.status}.`, answer.status === 404 ? "info" : "error");
}

async function demoStock() {
  const answer = await api("PUT", "/inventory/products/KB-001/stock", { stock: 0 });
  say(answer.status === 403 ? "403: the gateway's route rule refused it before any service saw it."
    : `Answer ${answer.status}: ${problem(answer)}`, answer.status === 403 ? "info" : "error");
}

// -- hop inspector ------------------------------------------------------------------------
function inspect(method, path, answer) {
  const line = $("last-request");
  line.classList.remove("muted");
  line.replaceChildren(
    el("span", { class: "mono", text: `${method} /api${path}` }),
    " → ",
    el("span", { class: `badge ${answer.ok ? "allow" : "deny"}`, text: String(answer.status) }),
    " trace ",
    el("span", { class: "mono", id: "trace-id", text: answer.traceId || "?" }),
  );
  $("waterfall").replaceChildren(el("li", { class: "muted", text: "Waiting for the spans…" }));
  if (answer.traceId) loadTrace(answer.traceId);
}

// Spans reach the files a moment after the request: poll until the trace stops growing.
async function loadTrace(traceId) {
  const ticket = ++state.inspecting;
  let last = -1;
  let stable = 0;
  for (let attempt = 0; attempt < 40 && ticket === state.inspecting; attempt++) {
    const answer = await bff("GET", `/bff/trace/${traceId}`);
    if (answer.ok) {
      const count = answer.data.spans.length;
      if (count === last && ++stable >= 2) break;
      if (count !== last) stable = 0;
      last = count;
      renderWaterfall(answer.data.spans);
    } else if (answer.status === 401) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  if (ticket === state.inspecting) $("waterfall").dataset.complete = "true";
}

function depthOf(span, byId) {
  let depth = 0;
  for (let parent = byId.get(span.parent_id); parent && depth < 20; parent = byId.get(parent.parent_id)) depth++;
  return depth;
}

// Database spans (one per SQL statement) are real but drown the hops: hidden unless asked for.
function isDatabase(span) {
  return span.name === "connect" || Object.keys(span.attributes || {}).some((k) => k.startsWith("db."));
}

function spanLabel(span) {
  const a = span.attributes || {};
  if (span.kind !== "client") return span.name;
  const url = a["url.full"] || a["http.url"];
  if (!url) return span.name;
  try {
    const target = new URL(url);
    return `calls ${span.name} :${target.port}${target.pathname}`;
  } catch {
    return span.name;
  }
}

function renderWaterfall(allSpans) {
  state.spans = allSpans;
  const list = $("waterfall");
  list.dataset.complete = "false";
  list.replaceChildren();
  const spans = $("show-db").checked ? allSpans : allSpans.filter((s) => !isDatabase(s));
  if (!spans.length) return;
  const byId = new Map(allSpans.map((s) => [s.span_id, s]));
  const t0 = Math.min(...spans.map((s) => s.start_ns));
  const t1 = Math.max(...spans.map((s) => s.end_ns));
  const total = Math.max(t1 - t0, 1);
  for (const span of spans) {
    const a = span.attributes || {};
    const decision = a["relayshop.auth.decision"];
    const service = SERVICES.includes(span.service) ? span.service : "other";
    const bar = el("span", { class: `bar svc-bg-${service}` });
    bar.style.left = `${((span.start_ns - t0) / total) * 100}%`;
    bar.style.width = `${Math.max(((span.end_ns - span.start_ns) / total) * 100, 0.6)}%`;
    const label = el(
      "div",
      { class: "label" },
      el("span", { class: `svc svc-${service}`, text: span.service }),
      el("span", { class: `name kind-${span.kind}`, text: spanLabel(span), title: span.name }),
    );
    label.style.paddingLeft = `${depthOf(span, byId) * 0.9}rem`;
    const row = el(
      "li",
      { class: `hop kind-${span.kind}`, data: { service: span.service, kind: span.kind, decision: decision || "" } },
      label,
      el("div", { class: "track" }, bar),
      el("span", { class: "ms num", text: `${((span.end_ns - span.start_ns) / 1e6).toFixed(1)} ms` }),
    );
    if (decision) {
      const facts = [
        ["check", a["relayshop.auth.check"]],
        ["reason", a["relayshop.auth.reason"]],
        ["user", a["enduser.id"]],
        ["roles", Array.isArray(a["enduser.role"]) ? a["enduser.role"].join(",") : a["enduser.role"]],
        ["caller", a["relayshop.caller"]],
        // The token this hop received: watch aud narrow and act grow as it travels.
        ["aud", a["relayshop.token.aud"]],
        ["scope", a["relayshop.token.scope"]],
        ["act", a["relayshop.token.act"]],
      ].filter(([, value]) => value !== undefined && value !== null && value !== "");
      const detail = el("div", { class: "decision" }, el("span", { class: `badge ${decision === "allow" ? "allow" : "deny"}`, text: decision }));
      for (const [key, value] of facts) detail.append(el("span", { class: "fact" }, el("b", { text: key }), ` ${value}`));
      row.append(detail);
    }
    list.append(row);
  }
}

// -- wiring -------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", async () => {
  for (const button of document.querySelectorAll(".account")) {
    button.addEventListener("click", () => signIn(button.dataset.user));
  }
  $("logout").addEventListener("click", logOut);
  $("order-form").addEventListener("submit", placeOrder);
  $("refresh-orders").addEventListener("click", () => loadOrders(false));
  $("demo-foreign").addEventListener("click", demoForeign);
  $("demo-stock").addEventListener("click", demoStock);
  $("demo-revoke").addEventListener("click", logOut);
  $("show-db").addEventListener("change", () => {
    const complete = $("waterfall").dataset.complete;
    renderWaterfall(state.spans);
    $("waterfall").dataset.complete = complete;
  });
  await loadProviders();
  await loadSession();
  if (state.session) {
    await loadProducts();
    await loadOrders();
  }
});
