// earshot dashboard: plain JS over the /v1 API, charts with the vendored Chart.js (static/vendor/).
//
// Safety rules of this file: every string that comes from the API (mention texts are stored verbatim and
// may hold "<script>") is put into the page with textContent / text nodes, never innerHTML. The search
// highlight is HTML-escaped by the API with only <mark> added; it is still not parsed as HTML: it is split
// on <mark>/</mark> and each piece is un-escaped and inserted as a text node.
//
// Auth: the API key is kept in sessionStorage (this tab only) and sent as "Authorization: Bearer". A
// "#key=..." URL fragment (never sent to servers or written to their logs) pre-fills it and is then
// removed from the address bar. The alert stream is read with fetch() and a ReadableStream rather than
// EventSource, because EventSource cannot send an Authorization header.
(function () {
  "use strict";

  const KEY_STORAGE = "earshot.apiKey";
  const RANGES = {
    "1h": { ms: 3600e3, interval: "1m" },
    "6h": { ms: 6 * 3600e3, interval: "5m" },
    "24h": { ms: 24 * 3600e3, interval: "1h" },
    "7d": { ms: 7 * 24 * 3600e3, interval: "6h" },
    "30d": { ms: 30 * 24 * 3600e3, interval: "1d" },
  };
  const REFRESH_MS = 30000; // charts and counts are re-read this often while the tab is visible
  const MAX_ALERTS = 30; // alerts kept in the panel
  const COLORS = { negative: "#d9534f", neutral: "#9aa3b2", positive: "#3c9d5d" };
  const PALETTE = ["#2f5fd0", "#e06b26", "#3c9d5d", "#9b59b6", "#c0262d", "#17a2b8", "#e0a326", "#5d6678", "#8c564b"];

  const state = {
    config: null, brand: null, charts: {}, alerts: new Map(), stream: null, refreshTimer: null,
    sovChoice: new Map(), // brand -> the brands the user ticked for its share-of-voice chart
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function note(id, text, isError) {
    const node = $(id);
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // -- the API key -------------------------------------------------------------------------------

  function takeKeyFromFragment() {
    const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]).trim());
      history.replaceState(null, "", location.pathname + location.search); // out of the address bar and history
    }
  }

  const apiKey = () => sessionStorage.getItem(KEY_STORAGE) || "";

  function askForKey(message) {
    stopAll();
    sessionStorage.removeItem(KEY_STORAGE);
    $("dashboard").hidden = true;
    $("key-panel").hidden = false;
    $("key-message").textContent = message || "";
    $("key-input").value = "";
    $("key-input").focus();
  }

  // -- calling the API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return typeof body.error === "string" ? body.error : response.statusText;
    } catch (e) {
      return response.statusText || "HTTP " + response.status;
    }
  }

  function authHeaders(accept) {
    return { Authorization: "Bearer " + apiKey(), Accept: accept || "application/json" };
  }

  /** A POST/PUT/DELETE with a JSON body; the answer's JSON (null for 204). */
  async function send(method, path, body, params) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(params || {})) url.searchParams.set(name, value);
    const response = await fetch(url, {
      method, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
      headers: Object.assign(authHeaders(), { "Content-Type": "application/json" }),
    });
    if (response.status === 401) {
      const message = await errorText(response);
      askForKey("The API refused the key: " + message);
      throw new ApiError(401, message);
    }
    if (!response.ok) {
      let body = {};
      try { body = await response.json(); } catch (e) { /* not JSON */ }
      const error = new ApiError(response.status, typeof body.error === "string" ? body.error : response.statusText);
      error.body = body;
      throw error;
    }
    return response.status === 204 ? null : response.json();
  }

  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const response = await fetch(url, { headers: authHeaders(), cache: "no-store" });
    if (response.status === 401) {
      const message = await errorText(response);
      askForKey("The API refused the key: " + message);
      throw new ApiError(401, message);
    }
    if (!response.ok) throw new ApiError(response.status, await errorText(response));
    return response.json();
  }

  /** A panel's message for a failed call; 404 on a route this API version does not have yet. */
  function failure(error, what, scope) {
    if (error.status === 403) return "This key's role cannot read " + what + (scope ? " (needs " + scope + ")." : ".");
    if (error.status === 404 && /not found/i.test(error.message)) return what + ": not served by this API version.";
    if (error.status === 429) return "Rate limit reached; retrying at the next refresh.";
    return what + ": " + (error.message || "request failed");
  }

  function timeWindow() {
    const range = RANGES[$("range").value] || RANGES["24h"];
    const to = new Date();
    const from = new Date(to.getTime() - range.ms);
    return { from: from.toISOString(), to: to.toISOString(), interval: range.interval };
  }

  function bucketLabel(iso, interval) {
    const at = new Date(iso);
    if (interval.endsWith("d")) return at.toLocaleDateString([], { month: "short", day: "numeric" });
    if (interval === "6h") return at.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit" });
    return at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  const percent = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : (100 * x).toFixed(1) + " %");

  function whenText(iso) {
    const at = new Date(iso);
    return Number.isNaN(at.getTime()) ? "" : at.toLocaleString();
  }

  // -- charts ------------------------------------------------------------------------------------

  function drawChart(name, canvas, config) {
    if (state.charts[name]) state.charts[name].destroy();
    config.options = Object.assign({
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom" } },
    }, config.options || {});
    state.charts[name] = new window.Chart(canvas, config);
  }

  async function loadTrend() {
    const brand = state.brand;
    const { from, to, interval } = timeWindow();
    try {
      const trend = await api("/v1/brands/" + encodeURIComponent(brand) + "/trend", { from, to, interval });
      if (brand !== state.brand) return;
      const buckets = trend.buckets;
      drawChart("trend", $("trend-chart"), {
        type: "bar",
        data: {
          labels: buckets.map((b) => bucketLabel(b.start, interval)),
          datasets: ["negative", "neutral", "positive"].map((label) => ({
            label, data: buckets.map((b) => b[label]), backgroundColor: COLORS[label], stack: "sentiment",
          })),
        },
        options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
      });
      const negative = buckets.reduce((sum, b) => sum + b.negative, 0);
      $("stat-total").textContent = trend.total.toLocaleString();
      $("stat-voices").textContent = buckets.reduce((sum, b) => sum + b.voices, 0).toLocaleString();
      $("stat-negative").textContent = trend.total ? percent(negative / trend.total) : "–";
      note("trend-note", trend.total ? "" : "No mentions of this brand in the range.");
    } catch (error) {
      if (error.status !== 401) note("trend-note", failure(error, "Trends", "trends:read"), true);
    }
  }

  // -- share of voice ----------------------------------------------------------------------------

  function brandName(id) {
    const found = state.config && state.config.brands.find((b) => b.id === id);
    return found ? found.name : id;
  }

  /** Default comparison: the picked brand's group in brands.yaml (an own brand and the competitors listed under it). */
  function defaultSovBrands(brand) {
    const brands = state.config.brands;
    const picked = brands.find((b) => b.id === brand);
    const group = picked && picked.group ? brands.filter((b) => b.group === picked.group) : brands;
    return group.map((b) => b.id);
  }

  function renderSovChoices() {
    const brand = state.brand;
    if (!state.sovChoice.has(brand)) state.sovChoice.set(brand, new Set(defaultSovBrands(brand)));
    const chosen = state.sovChoice.get(brand);
    chosen.add(brand);
    const box = $("sov-brands");
    box.replaceChildren();
    for (const b of state.config.brands) {
      const label = el("label", "inline");
      const input = el("input");
      input.type = "checkbox";
      input.value = b.id;
      input.checked = chosen.has(b.id);
      input.disabled = b.id === brand;
      input.addEventListener("change", () => {
        if (input.checked) chosen.add(b.id); else chosen.delete(b.id);
        loadShareOfVoice();
      });
      label.append(input, document.createTextNode(b.name));
      box.append(label);
    }
  }

  async function loadShareOfVoice() {
    const brand = state.brand;
    const chosen = state.config.brands.map((b) => b.id).filter((id) => state.sovChoice.get(brand).has(id));
    const { from, to, interval } = timeWindow();
    try {
      const sov = await api("/v1/competitors/share-of-voice", { brands: chosen.join(","), from, to, interval });
      if (brand !== state.brand) return;
      const brands = sov.brands || chosen;
      drawChart("sov", $("sov-chart"), {
        type: "bar",
        data: {
          labels: sov.buckets.map((b) => bucketLabel(b.start, sov.interval || interval)),
          datasets: brands.map((id, i) => ({
            label: brandName(id), backgroundColor: PALETTE[i % PALETTE.length], stack: "share",
            data: sov.buckets.map((b) => 100 * ((b.share || {})[id] || 0)),
          })),
        },
        options: { scales: { x: { stacked: true }, y: { stacked: true, min: 0, max: 100, title: { display: true, text: "% of mentions" } } } },
      });
      const rows = $("sov-rows");
      rows.replaceChildren();
      for (const id of brands) {
        const total = (sov.totals || {})[id] || {};
        const row = el("tr", id === brand ? "current-brand" : "");
        row.append(el("td", "", brandName(id)), el("td", "", (total.volume || 0).toLocaleString()),
          el("td", "", percent(total.share)), el("td", "", percent(total.positive_share)),
          el("td", "", percent(total.negative_share)));
        rows.append(row);
      }
      $("sov-table").hidden = false;
      note("sov-note", "");
    } catch (error) {
      if (error.status === 401) return;
      if (state.charts.sov) { state.charts.sov.destroy(); delete state.charts.sov; }
      $("sov-table").hidden = true;
      note("sov-note", failure(error, "Share of voice", "trends:read"), true);
    }
  }

  // -- alerts: the list, then the live stream --------------------------------------------------

  function upsertAlert(alert, live) {
    const known = state.alerts.get(alert.id);
    if (known && known.version > alert.version) return false;
    state.alerts.set(alert.id, Object.assign({}, alert, { _live: live || (known && known._live) }));
    return true;
  }

  function renderAlerts() {
    const list = $("alerts-list");
    const alerts = [...state.alerts.values()].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
    for (const stale of alerts.slice(MAX_ALERTS)) state.alerts.delete(stale.id);
    list.replaceChildren(...alerts.slice(0, MAX_ALERTS).map(alertItem));
    $("stat-alerts").textContent = alerts.filter((a) => a.status !== "resolved").length;
    note("alerts-note", alerts.length ? "" : "No alerts yet; new ones appear here as they are raised.");
    if (state.onAlerts) state.onAlerts([...state.alerts.values()]); // the crisis room (workspaces.js)
  }

  function alertItem(alert) {
    const item = el("li", "alert");
    item.dataset.alertId = alert.id;
    if (alert._live) item.classList.add("live");
    if (alert.brand === state.brand) item.classList.add("current-brand");
    const head = el("div", "item-head");
    if (alert._live) head.append(el("span", "badge new", "new"));
    head.append(el("span", "badge " + alert.severity, alert.severity), el("strong", "", brandName(alert.brand)),
      el("span", "", alert.signal + " spike"), el("span", "badge", alert.status));
    item.append(head);
    const observed = alert.signal === "negative" ? percent(alert.observed) + " negative" : Math.round(alert.observed) + " per bucket";
    const expected = alert.signal === "negative" ? percent(alert.expected) : Math.round(alert.expected);
    const terms = (alert.terms || []).slice(0, 5).map((t) => t.term).join(", ");
    item.append(el("div", "meta", observed + " (expected " + expected + ") · " + whenText(alert.updated_at) +
      (terms ? " · terms: " + terms : "")));
    const first = (alert.mentions || [])[0];
    if (first) item.append(el("p", "item-text", first.text));
    return item;
  }

  async function loadAlerts() {
    try {
      const page = await api("/v1/alerts", { size: 20 });
      for (const alert of page.alerts) upsertAlert(alert, false);
      renderAlerts();
    } catch (error) {
      if (error.status !== 401) note("alerts-note", failure(error, "Alerts", "alerts:read"), true);
    }
  }

  function setLive(stateName, text) {
    const badge = $("live-status");
    badge.dataset.state = stateName;
    badge.textContent = text;
  }

  /** Read Server-Sent Events from a fetch() body; calls onEvent({event, data, id}) per event. */
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { event: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) break; // a "\r\n" may be split
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (event.data.length) onEvent({ event: event.event, data: event.data.join("\n"), id: event.id });
          event = { event: "message", data: [], id: null };
        } else if (!line.startsWith(":")) { // ":" lines are comments (keep-alives)
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "data") event.data.push(text);
          else if (field === "event") event.event = text;
          else if (field === "id") event.id = text;
        }
      }
    }
  }

  async function followAlerts() {
    const controller = new AbortController();
    state.stream = controller;
    let failures = 0;
    while (!controller.signal.aborted) {
      try {
        const response = await fetch("/v1/alerts/stream", {
          headers: authHeaders("text/event-stream"), signal: controller.signal, cache: "no-store",
        });
        if (response.status === 401) { askForKey("The API refused the key: " + await errorText(response)); return; }
        if (response.status === 403) { setLive("denied", "alerts: no access"); return; }
        if (!response.ok) throw new ApiError(response.status, await errorText(response));
        setLive("live", "alerts: live");
        if (failures > 0) await loadAlerts(); // the stream is live only: fetch what was raised while away
        failures = 0;
        await readEvents(response.body, (event) => {
          if (event.event !== "alert") return;
          let alert;
          try { alert = JSON.parse(event.data); } catch (e) { return; }
          if (upsertAlert(alert, true)) renderAlerts();
        });
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      // The stream ended (server restart, or it dropped this client for reading too slowly): reconnect.
      failures += 1;
      setLive("retry", "alerts: reconnecting");
      await sleep(Math.min(30000, 500 * 2 ** Math.min(failures, 6)) * (0.5 + Math.random() / 2));
    }
  }

  // -- search --------------------------------------------------------------------------------------

  const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'" };

  /** Text of an HTML-escaped string (entities only: it is never parsed as markup). */
  function unescapeHtml(text) {
    return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name) => {
      if (name[0] === "#") {
        const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
      }
      return ENTITIES[name.toLowerCase()] ?? whole;
    });
  }

  /** The API's highlight ("...<mark>word</mark>...", otherwise escaped) as text nodes and <mark> elements. */
  function highlighted(html) {
    const fragment = document.createDocumentFragment();
    let mark = null;
    for (const part of html.split(/(<mark>|<\/mark>)/)) {
      if (part === "<mark>") {
        mark = el("mark");
        fragment.append(mark);
      } else if (part === "</mark>") {
        mark = null;
      } else if (part) {
        (mark || fragment).append(document.createTextNode(unescapeHtml(part)));
      }
    }
    return fragment;
  }

  function mentionItem(mention, highlight) {
    const item = el("li", "mention");
    item.dataset.mentionId = mention.id;
    const text = el("p", "item-text");
    if (highlight) text.append(highlighted(highlight)); else text.textContent = mention.text;
    const head = el("div", "item-head");
    const label = mention.sentiment && mention.sentiment.label;
    if (label) head.append(el("span", "badge " + label, label));
    const author = mention.author && (mention.author.handle ? "@" + mention.author.handle : mention.author.display_name);
    head.append(el("span", "meta", [author, mention.source, whenText(mention.created_at)].filter(Boolean).join(" · ")));
    if ((mention.brands || []).length) head.append(el("span", "meta", "brands: " + mention.brands.join(", ")));
    item.append(head, text);
    return item;
  }

  async function runSearch(extra) {
    const q = $("search-q").value.trim();
    const params = Object.assign({ q, size: 20 }, extra || {});
    if ($("search-brand-only").checked) params.brand = state.brand;
    note("search-note", "Searching…");
    try {
      const page = await api("/v1/mentions/search", params);
      $("search-results").replaceChildren(...page.hits.map((hit) => mentionItem(hit, hit.highlight)));
      note("search-note", page.total.toLocaleString() + " mention" + (page.total === 1 ? "" : "s") +
        (page.hits.length < page.total ? ", newest " + page.hits.length + " shown" : ""));
    } catch (error) {
      if (error.status !== 401) note("search-note", failure(error, "Search", "mentions:read"), true);
    }
  }

  // -- triage queue --------------------------------------------------------------------------------

  function triageItem(entry) {
    const mention = entry.mention || entry;
    const item = mentionItem(mention, null);
    const triage = entry.triage || entry;
    const facts = [];
    const status = triage.state || triage.status;
    if (status) facts.push(status);
    if (triage.assignee) facts.push("assigned to " + triage.assignee);
    const priority = entry.priority ?? mention.priority;
    if (priority !== undefined && priority !== null) facts.push("priority " + Math.round(priority));
    if (facts.length) item.querySelector(".item-head").prepend(el("span", "badge", facts.join(" · ")));
    return item;
  }

  async function loadTriage() {
    const team = $("team").value;
    if (!team) return;
    try {
      const page = await api("/v1/triage/" + encodeURIComponent(team) + "/queue", { size: 20 });
      const items = page.items || page.queue || page.hits || [];
      $("triage-list").replaceChildren(...items.map(triageItem));
      note("triage-note", items.length ? "" : "Nothing waiting for " + team + ".");
    } catch (error) {
      if (error.status === 401) return;
      $("triage-list").replaceChildren();
      note("triage-note", failure(error, "The triage queue", "triage:read"), error.status !== 404);
    }
  }

  // -- putting it together ---------------------------------------------------------------------

  function fillSelect(select, options, selected) {
    select.replaceChildren(...options.map(([value, text]) => {
      const option = el("option", "", text);
      option.value = value;
      option.selected = value === selected;
      return option;
    }));
    select.disabled = false;
  }

  function refreshBrandPanels() {
    renderSovChoices();
    renderAlerts();
    return Promise.all([loadTrend(), loadShareOfVoice()]);
  }

  function stopAll() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    clearInterval(state.refreshTimer);
    setLive("off", "alerts: not connected");
  }

  async function start() {
    $("key-panel").hidden = true;
    let config;
    try {
      config = await api("/dashboard/config");
    } catch (error) {
      if (error.status !== 401) askForKey("Could not load the dashboard: " + error.message);
      return;
    }
    state.config = config;
    $("dashboard").hidden = false;
    const own = config.brands.find((b) => !b.competitor) || config.brands[0];
    const query = new URLSearchParams(location.search); // ?brand=<id>&range=<1h|6h|24h|7d|30d> pick the start view
    const wanted = query.get("brand");
    if (Object.hasOwn(RANGES, query.get("range"))) $("range").value = query.get("range");
    state.brand = config.brands.some((b) => b.id === wanted) ? wanted : own && own.id;
    fillSelect($("brand"), config.brands.map((b) => [b.id, b.name + (b.competitor ? " (competitor)" : "")]), state.brand);
    fillSelect($("team"), config.teams.map((t) => [t, t.replace(/_/g, " ")]), config.teams.includes("customer_care") ? "customer_care" : config.teams[0]);
    if (window.earshotWorkspaces) window.earshotWorkspaces.start(config);
    if (!state.brand) { note("trend-note", "brands.yaml names no brand.", true); return; }
    await Promise.all([refreshBrandPanels(), loadAlerts(), loadTriage()]);
    followAlerts();
    state.refreshTimer = setInterval(() => {
      if (document.visibilityState === "visible") { refreshBrandPanels(); loadTriage(); }
    }, REFRESH_MS);
    document.body.dataset.ready = "true"; // the first load is done (used by the browser tests)
  }

  function wire() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      start();
    });
    $("change-key").addEventListener("click", () => askForKey(""));
    $("brand").addEventListener("change", () => {
      state.brand = $("brand").value;
      refreshBrandPanels();
      if ($("search-q").value.trim()) runSearch();
    });
    $("range").addEventListener("change", refreshBrandPanels);
    $("team").addEventListener("change", loadTriage);
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      runSearch();
    });
    // What workspaces.js builds on: the same API calls, node builders and state.
    window.earshot = {
      state, api, send, el, note, failure, percent, whenText, mentionItem, highlighted, brandName, timeWindow,
      apiKey, upsertAlert, renderAlerts, runSearch, fillSelect,
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire();
    takeKeyFromFragment();
    if (apiKey()) start(); else askForKey("");
  });
})();
