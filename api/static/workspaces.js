// earshot workspaces: one view per team, shown by the key's role (GET /dashboard/config -> caller.views).
//
// Built on app.js (window.earshot: the API calls, node builders, state). The same safety rules: every
// string from the API goes in as text (textContent, text nodes), never as HTML. A view is a convenience,
// not a barrier: the API checks every call on its own (a team-bound key gets 403 on other teams' queues).
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const VIEWS = ["crisis", "comms", "care", "ir", "data", "admin"];
  const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
  const ROLES = ["comms", "crisis", "ir", "data", "care", "admin"];
  const REFRESH_MS = 30000;
  const ws = { config: null, caller: null, view: null, loaded: new Set(), wired: new Set(), queries: [], timer: null };

  /** Add a listener once per page, however many times a view is (re)loaded after a key change. */
  function wireOnce(id, type, handler) {
    const name = id + ":" + type;
    if (ws.wired.has(name)) return;
    ws.wired.add(name);
    $(id).addEventListener(type, handler);
  }

  const E = () => window.earshot;

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 48 * 3600) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  function button(text, onClick, className) {
    const node = E().el("button", className || "", text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function errorOf(error, what) {
    return E().failure(error, what);
  }

  // -- views and tabs ----------------------------------------------------------------------------

  function showView(name) {
    if (!ws.caller.views.includes(name)) name = ws.caller.views[0];
    ws.view = name;
    for (const view of VIEWS) {
      const tab = $("tab-" + view);
      const selected = view === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $("view-" + view).hidden = !selected;
    }
    document.body.dataset.view = name;
    const url = new URL(location.href);
    url.searchParams.set("view", name);
    history.replaceState(null, "", url.pathname + url.search);
    if (!ws.loaded.has(name)) {
      ws.loaded.add(name);
      LOADERS[name]();
    }
  }

  function wireTabs() {
    const bar = $("workspace-tabs");
    bar.addEventListener("click", (event) => {
      const tab = event.target.closest("[role=tab]");
      if (tab) showView(tab.dataset.view);
    });
    bar.addEventListener("keydown", (event) => { // arrow keys move between tabs (WAI-ARIA tabs pattern)
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
      const views = ws.caller.views;
      let at = views.indexOf(ws.view);
      if (event.key === "ArrowLeft") at = (at - 1 + views.length) % views.length;
      if (event.key === "ArrowRight") at = (at + 1) % views.length;
      if (event.key === "Home") at = 0;
      if (event.key === "End") at = views.length - 1;
      showView(views[at]);
      $("tab-" + views[at]).focus();
      event.preventDefault();
    });
  }

  // -- crisis room ---------------------------------------------------------------------------------

  function renderCrisis(alerts) {
    if (!ws.caller || !ws.caller.views.includes("crisis")) return;
    const open = alerts.filter((a) => a.status !== "resolved").sort((a, b) =>
      (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9) ||
      String(b.updated_at).localeCompare(String(a.updated_at)));
    const list = $("crisis-list");
    const focused = document.activeElement && document.activeElement.closest("#crisis-list li");
    const focusedId = focused && focused.dataset.alertId;
    list.replaceChildren(...open.map(incidentItem));
    if (focusedId) { // keep the keyboard user's place when a live update redraws the list
      const again = list.querySelector(`li[data-alert-id="${CSS.escape(focusedId)}"] textarea`);
      if (again) again.focus();
    }
    E().note("crisis-note", open.length ? open.length + " open" : "No open incidents.");
  }

  function incidentItem(alert) {
    const { el, whenText, percent, brandName } = E();
    const item = el("li", "incident");
    item.dataset.alertId = alert.id;
    item.dataset.status = alert.status === "resolved" ? "resolved" : alert.acknowledged_at ? "acknowledged" : alert.status;
    const head = el("div", "item-head");
    head.append(el("span", "badge " + alert.severity, alert.severity), el("strong", "", brandName(alert.brand)),
      el("span", "", alert.signal + " spike"), el("span", "badge status", alert.status));
    item.append(head);
    const explanation = alert.explanation && alert.explanation.summary;
    const observed = alert.signal === "negative" ? percent(alert.observed) : Math.round(alert.observed);
    const expected = alert.signal === "negative" ? percent(alert.expected) : Math.round(alert.expected);
    item.append(el("p", "", explanation || ("observed " + observed + " against " + expected + " expected")));
    const terms = (alert.terms || []).slice(0, 8).map((t) => t.term).join(", ");
    if (terms) item.append(el("div", "meta", "rising: " + terms));
    const timeline = el("ol", "timeline");
    const steps = [["started", alert.started_at], ["last change (" + (alert.last_change || "updated") + ")", alert.updated_at]];
    if (alert.acknowledged_at) steps.push(["acknowledged by " + (alert.acknowledged_by || "?"), alert.acknowledged_at]);
    if (alert.resolved_at) steps.push(["resolved" + (alert.resolved_by ? " by " + alert.resolved_by : ""), alert.resolved_at]);
    for (const [what, when] of steps) timeline.append(el("li", "meta", whenText(when) + " · " + what));
    item.append(timeline);
    if (alert.note) item.append(el("p", "meta note-text", "note: " + alert.note));
    const posts = el("ul", "posts");
    for (const post of (alert.mentions || []).slice(0, 3)) posts.append(el("li", "item-text", post.text));
    if (posts.childElementCount) item.append(posts);
    const noteBox = el("textarea", "note-input");
    noteBox.rows = 2;
    noteBox.maxLength = 2000;
    noteBox.setAttribute("aria-label", "Note for " + brandName(alert.brand) + " " + alert.signal + " incident");
    noteBox.placeholder = alert.acknowledged_at ? "note (kept with the resolve)" : "note (kept with the acknowledge or resolve)";
    const actions = el("div", "actions");
    const act = (what) => async () => {
      const body = { by: ws.caller.name };
      if (noteBox.value.trim()) body.note = noteBox.value.trim();
      try {
        const changed = await E().send("POST", "/v1/alerts/" + encodeURIComponent(alert.id) + "/" + what, body);
        E().upsertAlert(changed, false);
        E().renderAlerts();
      } catch (error) {
        if (error.status !== 401) E().note("crisis-note", errorOf(error, "The " + what), true);
      }
    };
    // A note travels with an acknowledge or a resolve (the alerts API has no note-only action yet).
    if (!alert.acknowledged_at) actions.append(button("Acknowledge", act("ack"), "ack"));
    actions.append(button("Resolve", act("resolve"), "resolve"));
    item.append(noteBox, actions);
    return item;
  }

  function loadCrisis() {
    E().state.onAlerts = renderCrisis;
    renderCrisis([...E().state.alerts.values()]);
  }

  // -- care and routed teams ------------------------------------------------------------------------

  function careTeam() {
    return $("care-team").value;
  }

  async function loadKpis() {
    const team = careTeam();
    try {
      const k = await E().api("/v1/triage/" + encodeURIComponent(team) + "/kpis");
      $("kpi-backlog").textContent = k.backlog;
      $("kpi-responded").textContent = k.responded + " / " + k.routed;
      $("kpi-median").textContent = duration(k.first_response_median_s);
      $("kpi-p90").textContent = duration(k.first_response_p90_s);
      $("kpi-sla").textContent = k.sla_due ? E().percent(1 - k.sla_breaches / k.sla_due) : "–";
      $("kpi-72h").textContent = E().percent(k.unanswered_72h_share);
      E().note("kpi-note", "Last 30 days; SLA " + duration(k.sla_s) + "; " + k.sla_breaches + " breaches of " + k.sla_due + " due.");
    } catch (error) {
      if (error.status !== 401) E().note("kpi-note", errorOf(error, "The KPIs"), true);
    }
  }

  function slaClock(mention, slaS) {
    const waited = (Date.now() - new Date(mention.created_at).getTime()) / 1000;
    const left = slaS - waited;
    const clock = E().el("span", "badge sla " + (left < 0 ? "breached" : left < slaS / 4 ? "soon" : "ok"),
      left < 0 ? "SLA breached " + duration(-left) + " ago" : "SLA " + duration(left) + " left");
    return clock;
  }

  function queueItem(entry, slaS) {
    const { el, mentionItem } = E();
    const { mention, triage } = entry;
    const item = mentionItem(mention, null);
    item.classList.add("queue-item");
    item.dataset.status = triage.status;
    const head = item.querySelector(".item-head");
    head.prepend(el("span", "badge priority", "priority " + Math.round(mention.priority || 0)),
      el("span", "badge status", triage.status + (triage.assignee ? " · " + triage.assignee : "")), slaClock(mention, slaS));
    if (triage.handed_over) {
      const last = (triage.history || []).filter((h) => h.action === "handover").pop();
      if (last) head.append(el("span", "meta", "handed over from " + (last.from_teams || []).join(", ") + ": " + last.reason));
    }
    if (mention.url) {
      const link = el("a", "meta", "open post");
      link.href = mention.url;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      head.append(link);
    }
    const path = "/v1/triage/mentions/" + encodeURIComponent(mention.id) + "/";
    const act = (what, body) => async () => {
      try {
        await E().send("POST", path + what, Object.assign({ version: triage.version }, body));
        await Promise.all([loadQueue(), loadKpis()]);
        // The KPIs aggregate over search, which sees the change after an index refresh (1 s; more under load).
        for (const ms of [1500, 4000, 8000]) setTimeout(loadKpis, ms);
      } catch (error) {
        if (error.status !== 401) E().note("care-note", errorOf(error, "The " + what), true);
      }
    };
    const actions = el("div", "actions");
    actions.append(button("Assign to me", act("assign", { assignee: ws.caller.name }), "assign"));
    const reply = el("input", "reply-url");
    reply.type = "url";
    reply.placeholder = "reply link (https://…)";
    reply.setAttribute("aria-label", "Reply link");
    actions.append(reply, button("Mark responded", () => {
      const url = reply.value.trim();
      return act("respond", url ? { reply_url: url } : {})();
    }, "respond"));
    actions.append(button("Resolve", act("resolve", {}), "resolve"));
    const target = el("select", "handover-team");
    target.setAttribute("aria-label", "Hand over to team");
    for (const team of ws.config.teams.filter((t) => t !== careTeam())) {
      const option = el("option", "", team.replace(/_/g, " "));
      option.value = team;
      target.append(option);
    }
    const reason = el("input", "handover-reason");
    reason.type = "text";
    reason.placeholder = "reason";
    reason.setAttribute("aria-label", "Reason for the handover");
    actions.append(target, reason, button("Hand over", () => {
      if (!reason.value.trim()) { E().note("care-note", "A handover needs a reason.", true); reason.focus(); return; }
      return act("handover", { team: target.value, reason: reason.value.trim() })();
    }, "handover"));
    item.append(actions);
    return item;
  }

  async function loadQueue() {
    const team = careTeam();
    try {
      const [page, kpis] = await Promise.all([
        E().api("/v1/triage/" + encodeURIComponent(team) + "/queue", { limit: 25 }),
        ws.slaS ? Promise.resolve(null) : E().api("/v1/triage/" + encodeURIComponent(team) + "/kpis"),
      ]);
      if (kpis) ws.slaS = kpis.sla_s;
      $("care-list").replaceChildren(...page.items.map((entry) => queueItem(entry, ws.slaS || 3600)));
      E().note("care-note", page.items.length ? "" : "Nothing waiting for " + team.replace(/_/g, " ") + ".");
    } catch (error) {
      if (error.status === 401) return;
      $("care-list").replaceChildren();
      E().note("care-note", errorOf(error, "The queue"), true);
    }
  }

  function loadCare() {
    const teams = ws.caller.teams.length ? ws.caller.teams : ws.config.teams;
    const start = teams.includes("customer_care") ? "customer_care" : teams[0];
    E().fillSelect($("care-team"), teams.map((t) => [t, t.replace(/_/g, " ")]), start);
    wireOnce("care-team", "change", () => { ws.slaS = null; loadQueue(); loadKpis(); });
    return Promise.all([loadQueue(), loadKpis()]);
  }

  // -- comms / reputation --------------------------------------------------------------------------

  function signed(value, digits, unit) {
    if (value === null || value === undefined) return "";
    const text = (value > 0 ? "+" : "") + value.toFixed(digits) + (unit || "");
    return text;
  }

  /** A figure that opens the posts behind it in the search card. */
  function figure(value, label, delta, search) {
    const { el } = E();
    const box = el("div", "stat");
    const number = button(String(value), () => {
      $("search-q").value = search.q || "";
      $("search-brand-only").checked = true;
      E().runSearch(search.extra);
      $("search-card").scrollIntoView({ block: "start" });
    }, "stat-value link");
    number.setAttribute("aria-label", label + ": " + value + "; show the posts");
    box.append(number, el("span", "stat-label", label + (delta ? " (" + delta + ")" : "")));
    return box;
  }

  async function loadReputation() {
    const { state, api, el, percent } = E();
    const brand = state.brand;
    const range = E().timeWindow();
    try {
      const r = await api("/v1/brands/" + encodeURIComponent(brand) + "/reputation", { interval: range.interval === "1m" ? "1h" : range.interval });
      if (brand !== state.brand) return;
      const c = r.current, d = r.deltas;
      const window = { from: r.from, to: r.to };
      $("reputation-figures").replaceChildren(
        figure(c.volume.toLocaleString(), "volume", d.volume_change === null ? "" : signed(100 * d.volume_change, 0, " %"), { extra: window }),
        figure(c.net_sentiment.toFixed(2), "net sentiment", signed(d.net_sentiment, 2), { extra: window }),
        figure(c.complaints.toLocaleString(), "complaints", signed(d.complaints, 0), { extra: window }),
        figure(c.voices.toLocaleString(), "voices", "", { extra: window }));
      const emotions = Object.entries(c.emotion.shares || {}).sort((a, b) => b[1] - a[1]);
      $("reputation-emotions").replaceChildren(...emotions.map(([label, share]) =>
        el("li", "", label + " " + percent(share) + " (" + signed(100 * ((d.emotion_shares || {})[label] || 0), 1, " pt") + ")")));
      $("reputation-themes").replaceChildren(...(c.complaint_themes || []).map((theme) => {
        const item = el("li");
        item.append(button(theme.term + " · " + theme.count, () => {
          $("search-q").value = theme.term;
          E().runSearch(window);
        }, "link"));
        return item;
      }));
      E().note("reputation-note", "From " + r.source + "; click a number to see its posts.");
    } catch (error) {
      if (error.status !== 401) E().note("reputation-note", E().failure(error, "Reputation", "trends:read"), true);
    }
  }

  // -- investor relations --------------------------------------------------------------------------

  async function runChatter(extraQ) {
    const { api, el, mentionItem } = E();
    if (extraQ) $("ir-q").value = extraQ;
    const q = $("ir-q").value.trim();
    try {
      const page = await api("/v1/ir/chatter", { q, size: 20 });
      $("ir-results").replaceChildren(...page.hits.map((hit) => mentionItem(hit, hit.highlight)));
      const facet = (items, text, query) => items.map((f) => {
        const item = el("li");
        item.append(button(text(f) + " · " + f.mentions, () => runChatter(query(f)), "link"));
        return item;
      });
      $("ir-cashtags").replaceChildren(...facet(page.cashtags, (f) => "$" + f.cashtag, (f) => f.cashtag));
      $("ir-authors").replaceChildren(...facet(page.authors, (f) => "@" + f.handle, (f) => f.handle));
      E().note("ir-note", page.total.toLocaleString() + " matching mention" + (page.total === 1 ? "" : "s"));
    } catch (error) {
      if (error.status !== 401) E().note("ir-note", E().failure(error, "Investor chatter", "ir:read"), true);
    }
  }

  function loadIr() {
    wireOnce("ir-form", "submit", (event) => { event.preventDefault(); runChatter(); });
    return runChatter();
  }

  // -- data team -----------------------------------------------------------------------------------

  function feedParams() {
    const params = {};
    const put = (name, value) => { if (value) params[name] = value; };
    put("q", $("feed-q").value.trim());
    put("brand", $("feed-brand").value);
    put("team", $("feed-team").value);
    put("lang", $("feed-lang").value.trim().toLowerCase());
    for (const [name, id] of [["from", "feed-from"], ["to", "feed-to"]]) {
      const value = $(id).value;
      if (value) params[name] = new Date(value).toISOString();
    }
    if ($("feed-format").value === "csv") params.format = "csv";
    return params;
  }

  function feedUrl(params) {
    const url = new URL("/v1/feed", location.origin);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    return url;
  }

  function shellQuote(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function updateCurl() {
    const url = feedUrl(feedParams());
    $("feed-curl").value = "curl -N -H \"Authorization: Bearer $EARSHOT_API_KEY\" " + shellQuote(url.toString());
  }

  async function previewFeed() {
    const params = Object.assign(feedParams(), { page_size: 20 });
    delete params.format;
    const { el, mentionItem } = E();
    E().note("feed-note", "Reading…");
    try {
      const response = await fetch(feedUrl(params), { headers: { Authorization: "Bearer " + E().apiKey() }, cache: "no-store" });
      if (!response.ok) {
        let message = response.statusText;
        try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
        throw Object.assign(new Error(message), { status: response.status });
      }
      // Read only the first page: the preview stops after 20 rows and cancels the stream.
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      const rows = [];
      while (rows.length < 20) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0 && rows.length < 20) {
          const line = JSON.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 1);
          if (line.mention) rows.push(line.mention);
        }
      }
      reader.cancel().catch(() => {});
      $("feed-preview").replaceChildren(...rows.map((m) => mentionItem(m, null)));
      E().note("feed-note", rows.length ? "First " + rows.length + " rows, oldest first." : "No mention matches.");
    } catch (error) {
      if (error.status === 401) return;
      $("feed-preview").replaceChildren(el("li", "error", ""));
      $("feed-preview").replaceChildren();
      E().note("feed-note", E().failure(error, "The feed", "feed:read"), true);
    }
  }

  /** Download the whole feed: fetched with the key (a link cannot send the header), saved as a file. */
  async function downloadFeed() {
    const params = feedParams();
    E().note("feed-note", "Downloading…");
    try {
      const response = await fetch(feedUrl(params), { headers: { Authorization: "Bearer " + E().apiKey() }, cache: "no-store" });
      if (!response.ok) throw Object.assign(new Error((await response.json()).error || response.statusText), { status: response.status });
      const blob = await response.blob();
      const link = E().el("a");
      link.href = URL.createObjectURL(blob);
      link.download = "earshot-feed." + (params.format === "csv" ? "csv" : "ndjson");
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      E().note("feed-note", "Saved " + link.download + " (" + blob.size.toLocaleString() + " bytes).");
    } catch (error) {
      if (error.status !== 401) E().note("feed-note", E().failure(error, "The download", "feed:read"), true);
    }
  }

  function loadData() {
    const { fillSelect } = E();
    fillSelect($("feed-brand"), [["", "any"], ...ws.config.brands.map((b) => [b.id, b.name])], "");
    fillSelect($("feed-team"), [["", "any"], ...ws.config.teams.map((t) => [t, t.replace(/_/g, " ")])], "");
    wireOnce("feed-form", "input", updateCurl);
    wireOnce("feed-form", "change", updateCurl);
    wireOnce("feed-form", "submit", (event) => { event.preventDefault(); previewFeed(); });
    wireOnce("feed-download", "click", downloadFeed);
    wireOnce("feed-copy", "click", async () => {
      try { await navigator.clipboard.writeText($("feed-curl").value); E().note("feed-note", "Copied."); } catch (e) {
        $("feed-curl").select();
        E().note("feed-note", "Select and copy the command (the clipboard is not available here).");
      }
    });
    updateCurl();
  }

  // -- admin: listening queries ---------------------------------------------------------------------

  let previewTimer = null;

  function showSyntaxError(text, body) {
    E().note("query-error", body.error || "syntax error", true);
    const caret = $("query-caret");
    if (typeof body.position === "number") {
      caret.textContent = text + "\n" + " ".repeat(Math.max(0, body.position)) + "^";
      caret.hidden = false;
      const box = $("query-text");
      box.setAttribute("aria-invalid", "true");
      box.setSelectionRange(body.position, Math.min(text.length, body.position + 1));
    } else {
      caret.hidden = true;
    }
  }

  async function previewQuery() {
    const text = $("query-text").value;
    $("query-text").removeAttribute("aria-invalid");
    if (!text.trim()) return;
    try {
      const preview = await E().send("POST", "/v1/queries/preview", { query: text }, { size: 10 });
      E().note("query-error", "");
      $("query-caret").hidden = true;
      $("query-preview").replaceChildren(...preview.mentions.map((m) => E().mentionItem(m, null)));
      E().note("query-note", preview.total.toLocaleString() + " indexed mention" + (preview.total === 1 ? "" : "s") + " match.");
    } catch (error) {
      if (error.status === 422 && error.body) showSyntaxError(text, error.body);
      else if (error.status !== 401) E().note("query-error", E().failure(error, "The preview", "queries:read"), true);
      $("query-preview").replaceChildren();
      E().note("query-note", "");
    }
  }

  function pickQuery() {
    const id = $("query-pick").value;
    const query = ws.queries.find((q) => q.id === id);
    $("query-id").value = query ? query.id : "";
    $("query-id").readOnly = Boolean(query);
    $("query-name").value = query ? query.name : "";
    $("query-text").value = query ? query.query : "";
    previewQuery();
  }

  async function loadQueries(selected) {
    try {
      const list = await E().api("/v1/queries");
      ws.queries = list.queries;
      E().fillSelect($("query-pick"), [["", "new query…"], ...list.queries.map((q) => [q.id, q.name + " (" + q.id + ")"])],
        selected || "");
      pickQuery();
    } catch (error) {
      if (error.status !== 401) E().note("query-error", E().failure(error, "Listening queries", "queries:read"), true);
    }
  }

  async function saveQuery(event) {
    event.preventDefault();
    const id = $("query-id").value.trim();
    const known = ws.queries.find((q) => q.id === id);
    const body = { name: $("query-name").value.trim(), query: $("query-text").value };
    try {
      if (known) await E().send("PUT", "/v1/queries/" + encodeURIComponent(id), Object.assign({ version: known.version }, body));
      else await E().send("POST", "/v1/queries", Object.assign({ id }, body));
      E().note("query-note", "Saved " + id + ".");
      await loadQueries(id);
    } catch (error) {
      if (error.status === 422 && error.body && typeof error.body.position === "number") showSyntaxError(body.query, error.body);
      else if (error.status !== 401) E().note("query-error", E().failure(error, "Saving", "queries:admin"), true);
    }
  }

  // -- admin: API keys ---------------------------------------------------------------------------

  async function loadKeys() {
    const { api, el, whenText } = E();
    try {
      const { keys } = await api("/v1/keys");
      $("keys-rows").replaceChildren(...keys.slice().reverse().map((key) => {
        const row = el("tr");
        row.dataset.keyId = key.key_id;
        const cell = el("td");
        if (!key.revoked_at) {
          cell.append(button("Revoke", async () => {
            try {
              await E().send("POST", "/v1/keys/" + key.key_id + "/revoke");
              loadKeys();
            } catch (error) {
              if (error.status !== 401) E().note("newkey-note", E().failure(error, "Revoking"), true);
            }
          }, "revoke"));
        }
        row.append(el("td", "", key.name), el("td", "", key.role), el("td", "", key.teams.join(", ") || "all"),
          el("td", "", whenText(key.created_at)), el("td", "", key.revoked_at ? "revoked" : "active"), cell);
        return row;
      }));
    } catch (error) {
      if (error.status !== 401) E().note("newkey-note", E().failure(error, "API keys", "keys:admin"), true);
    }
  }

  async function createKey(event) {
    event.preventDefault();
    const teams = [...$("newkey-teams").selectedOptions].map((o) => o.value);
    try {
      const made = await E().send("POST", "/v1/keys", { name: $("newkey-name").value.trim(), role: $("newkey-role").value, teams });
      $("newkey-secret").value = made.key;
      $("newkey-secret").hidden = false;
      E().note("newkey-note", "Created " + made.name + " (" + made.role + (made.teams.length ? ", teams " + made.teams.join(", ") : "") +
        "). Copy the key now: it is not shown again.");
      loadKeys();
    } catch (error) {
      if (error.status !== 401) E().note("newkey-note", E().failure(error, "Creating the key", "keys:admin"), true);
    }
  }

  function loadAdmin() {
    const { fillSelect } = E();
    wireOnce("query-pick", "change", pickQuery);
    wireOnce("query-text", "input", () => {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(previewQuery, 300); // live preview as the user types
    });
    wireOnce("query-form", "submit", saveQuery);
    fillSelect($("newkey-role"), ROLES.map((r) => [r, r]), "care");
    fillSelect($("newkey-teams"), ws.config.teams.map((t) => [t, t.replace(/_/g, " ")]), null);
    wireOnce("key-create", "submit", createKey);
    return Promise.all([loadQueries(), loadKeys()]);
  }

  const LOADERS = {
    crisis: loadCrisis, care: loadCare, ir: loadIr, data: loadData, admin: loadAdmin,
    comms: () => { loadReputation(); wireOnce("brand", "change", loadReputation); },
  };

  // -- start ---------------------------------------------------------------------------------------

  function start(config) {
    ws.config = config;
    ws.caller = config.caller || { name: "?", role: null, teams: [], views: ["comms"] };
    ws.loaded.clear();
    if (!ws.caller.views.length) ws.caller.views = ["comms"];
    for (const view of VIEWS) $("tab-" + view).hidden = !ws.caller.views.includes(view);
    $("workspace-tabs").hidden = false;
    $("caller").textContent = ws.caller.name + " · " + (ws.caller.role || "no role") +
      (ws.caller.teams.length ? " · " + ws.caller.teams.join(", ") : "");
    const wanted = new URLSearchParams(location.search).get("view");
    showView(ws.caller.views.includes(wanted) ? wanted : ws.caller.views[0]);
    clearInterval(ws.timer);
    ws.timer = setInterval(() => {
      if (document.visibilityState !== "visible") return;
      if (ws.view === "care") { loadQueue(); loadKpis(); }
      if (ws.view === "comms") loadReputation();
    }, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", wireTabs);
  window.earshotWorkspaces = { start };
})();
