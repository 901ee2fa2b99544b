// controlplane history: a read-only page over the /v1 API. No framework, no build step.
//
// Rules this file keeps:
//  - API text only ever reaches the page as text nodes (textContent / createTextNode) or
//    attribute values; never parsed as HTML (no HTML-string sinks at all).
//  - The token lives in sessionStorage and leaves only in the Authorization header; it is
//    never put in a URL and never logged.
"use strict";

(() => {
  const TOKEN_KEY = "controlplane.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const BAD_PHASES = new Set(["rolling_back", "rolled_back", "aborted", "failed"]);
  const LIVE_PHASES = new Set(["pending", "progressing", "paused", "promoting"]);
  const TERMINAL_PHASES = new Set(["succeeded", "rolled_back", "aborted"]);
  // controlplane.strategy.DEFAULT_MAX_ANALYSIS_SECONDS: how long a sequential analysis
  // step may look when its max_duration_seconds is not set (or count x interval, if longer)
  const DEFAULT_MAX_ANALYSIS_SECONDS = 3600;
  // metrics whose effect and margin are absolute shares (shown in percentage points)
  const RATIO_METRICS = new Set(["error_rate", "request_failure"]);
  const INCONCLUSIVE_WORDS = {
    no_series: "the canary has no series: not scraped (check the selector)",
    no_traffic: "the canary got no requests: check routing",
    unresolvable: "the quantile is beyond the histogram's largest bucket",
    too_few: "too few requests yet",
  };
  // The judge's defaults for the built-in metrics (controlplane/analysis/metrics.py), used
  // when a measurement's message does not state its margin (an inconclusive one, say).
  // relative: fails above stable x (1 + margin); absolute: above stable + margin;
  // lower: higher is better, fails below stable x (1 - margin).
  const BUILTIN_RULES = {
    ttft: { kind: "relative", margin: 0.1, unit: "s" },
    inter_token_latency: { kind: "relative", margin: 0.1, unit: "s" },
    e2e_latency: { kind: "relative", margin: 0.1, unit: "s" },
    error_rate: { kind: "absolute", margin: 0.01, unit: "%" },
    request_failure: { kind: "absolute", margin: 0.01, unit: "%" },
    throughput: { kind: "lower", margin: 0.1, unit: "tok/s" },
  };

  const $ = (id) => document.getElementById(id);

  // --- DOM helpers: everything is built from nodes, text is always text ---------------

  function build(ns, tag, attrs, children) {
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const h = (tag, attrs, ...children) => build(null, tag, attrs, children);
  const svg = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);

  function badge(value, extra) {
    return h("span", { class: `badge badge-${String(value).replace(/[^a-z_]/g, "")} ${extra || ""}` }, value);
  }

  // --- time ----------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");
  function parseTime(value) {
    if (!value) return null;
    // the API's datetimes are UTC; an offset-less one is UTC too
    const text = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? null : date;
  }
  function clock(value) {
    const d = parseTime(value);
    return d ? `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` : "";
  }
  function stamp(value) {
    const d = parseTime(value);
    if (!d) return "—";
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${clock(value)} UTC`;
  }
  const timeNode = (value, short) =>
    h("time", { datetime: value, title: stamp(value) }, short ? clock(value) : stamp(value));

  // --- the API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  async function api(path) {
    let response;
    try {
      response = await fetch(path, {
        headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (error) {
      throw new ApiError(0, `cannot reach the control plane (${error.message})`);
    }
    if (!response.ok) {
      let detail = "";
      try {
        const body = await response.json();
        detail = body.detail || body.title || "";
      } catch (_) {
        detail = response.statusText;
      }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  // every page of a list (newest first, as the API gives it), up to a sane cap
  async function all(path, cap = 5000) {
    const items = [];
    let cursor = null;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const query = `limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await api(`${path}${sep}${query}`);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < cap);
    return items;
  }

  const enc = encodeURIComponent;

  // --- frame: login, status line, breadcrumbs --------------------------------------------

  function showStatus(text, kind) {
    const node = $("status");
    node.textContent = text || "";
    node.className = `status ${kind || ""}`;
    node.hidden = !text;
  }

  function showLogin(message) {
    $("view").replaceChildren();
    $("crumbs").replaceChildren();
    showStatus("");
    $("login").hidden = false;
    $("signed-in").hidden = true;
    $("sign-out").hidden = true;
    const error = $("login-error");
    error.textContent = message || "";
    error.hidden = !message;
    $("token").focus();
  }

  function signedIn() {
    $("login").hidden = true;
    $("signed-in").hidden = false;
    $("sign-out").hidden = false;
  }

  function crumbs(...parts) {
    const nodes = [h("a", { href: "#/" }, "models")];
    for (const [label, href] of parts) {
      nodes.push(h("span", { class: "sep" }, "/"));
      nodes.push(href ? h("a", { href }, label) : h("span", {}, label));
    }
    $("crumbs").replaceChildren(...nodes);
  }

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(`The control plane did not accept this token (401): ${error.detail}. ` +
        "Check that it was copied whole and has not been revoked or expired.");
      return;
    }
    if (error instanceof ApiError && error.status === 403) {
      showStatus(`This token may not read this (403): ${error.detail}`, "error");
      return;
    }
    if (error instanceof ApiError && error.status === 404) {
      showStatus(`Not found: ${error.detail}`, "error");
      return;
    }
    showStatus(`Could not load: ${error.message}`, "error");
  }

  // --- views -----------------------------------------------------------------------------

  async function modelsView() {
    crumbs();
    const models = await all("/v1/models");
    const details = await Promise.all(
      models.slice(0, 100).map(async (m) => {
        const [versions, rollouts] = await Promise.all([
          all(`/v1/models/${enc(m.name)}/versions`),
          api(`/v1/models/${enc(m.name)}/rollouts?limit=1`),
        ]);
        return { versions, latest: rollouts.items[0] };
      }),
    );
    const rows = models.map((m, i) => {
      const { versions, latest } = details[i] || { versions: [], latest: null };
      return h("tr", { "data-model": m.name },
        h("td", {}, h("a", { href: `#/models/${enc(m.name)}`, class: "strong" }, m.name)),
        h("td", {}, m.namespace),
        h("td", { class: "badges" }, versions.slice(0, 8).map((v) =>
          h("span", { class: "pair" }, h("span", { class: "mono" }, v.version), badge(v.status)))),
        h("td", {}, latest
          ? h("a", { href: `#/rollouts/${latest.id}`, class: "latest" },
            `#${latest.id} ${latest.canary_version} `, badge(latest.phase),
            latest.reason && BAD_PHASES.has(latest.phase)
              ? h("span", { class: "reason-inline" }, latest.reason) : null)
          : h("span", { class: "muted" }, "no rollouts")),
      );
    });
    const view = h("section", { class: "card" },
      h("h1", {}, "Models"),
      models.length
        ? h("table", { class: "grid", id: "models" },
          h("thead", {}, h("tr", {}, ["model", "namespace", "versions", "latest rollout"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
        : h("p", { class: "muted" }, "No models are registered yet."));
    return [view];
  }

  async function modelView(name) {
    crumbs([name, null]);
    const [model, versions, rollouts] = await Promise.all([
      api(`/v1/models/${enc(name)}`),
      all(`/v1/models/${enc(name)}/versions`),
      all(`/v1/models/${enc(name)}/rollouts`),
    ]);
    const facts = h("dl", { class: "facts" },
      fact("namespace", model.namespace),
      fact("image", model.image, "mono"),
      fact("replicas", `${model.replicas} × ${model.gpus_per_replica} GPU`),
      fact("GPU budget", model.gpu_budget ?? "—"),
      model.description ? fact("description", model.description) : null);
    const versionRows = versions.map((v) => h("tr", { "data-version": v.version },
      h("td", { class: "mono strong" }, v.version),
      h("td", {}, badge(v.status)),
      h("td", {}, v.artifact_kind),
      h("td", { class: "mono wrap" }, v.artifact_uri),
      h("td", {}, timeNode(v.status_changed_at)),
      h("td", {}, v.created_by)));
    const rolloutRows = rollouts.map((r) => h("tr", {
      class: `clickable ${BAD_PHASES.has(r.phase) ? "bad" : ""}`,
      "data-rollout": r.id,
      onclick: () => { location.hash = `#/rollouts/${r.id}`; },
    },
    h("td", {}, h("a", { href: `#/rollouts/${r.id}`, class: "strong" }, `#${r.id}`)),
    h("td", { class: "mono" }, r.stable_version ? `${r.stable_version} → ${r.canary_version}` : `→ ${r.canary_version}`),
    h("td", {}, badge(r.phase)),
    h("td", { class: "num" }, `${r.weight}%`),
    h("td", {}, timeNode(r.created_at)),
    h("td", {}, r.created_by),
    h("td", { class: BAD_PHASES.has(r.phase) ? "reason-cell" : "muted" }, r.reason || "")));
    return [
      h("section", { class: "card" }, h("h1", {}, "Model ", h("span", { class: "mono" }, model.name)), facts),
      h("section", { class: "card" }, h("h2", {}, "Versions"),
        h("table", { class: "grid", id: "versions" },
          h("thead", {}, h("tr", {}, ["version", "status", "kind", "artifact", "status since", "registered by"].map((t) => h("th", {}, t)))),
          h("tbody", {}, versionRows))),
      h("section", { class: "card" }, h("h2", {}, "Rollouts"),
        rollouts.length
          ? h("table", { class: "grid", id: "rollouts" },
            h("thead", {}, h("tr", {}, ["rollout", "versions", "phase", "weight", "started", "by", "reason"].map((t) => h("th", {}, t)))),
            h("tbody", {}, rolloutRows))
          : h("p", { class: "muted" }, "No rollouts yet.")),
    ];
  }

  function fact(label, value, cls) {
    return [h("dt", {}, label), h("dd", { class: cls || "" }, value ?? "—")];
  }

  async function rolloutView(id) {
    const [rollout, events, measurements, evaluations] = await Promise.all([
      api(`/v1/rollouts/${enc(id)}`),
      all(`/v1/rollouts/${enc(id)}/events`),
      all(`/v1/rollouts/${enc(id)}/measurements`),
      api(`/v1/rollouts/${enc(id)}/evaluations`),
    ]);
    crumbs([rollout.model, `#/models/${enc(rollout.model)}`], [`rollout #${rollout.id}`, null]);
    const soFar = analysisSoFar(rollout, measurements, events, Date.now());
    events.reverse(); // oldest first: a timeline reads down
    measurements.reverse();
    return [banner(rollout), summary(rollout),
      ...(rollout.placement ? [placementPanel(rollout.placement)] : []),
      ...(evaluations.length ? [evaluationPanel(evaluations)] : []),
      ...(soFar ? [analysisPanel(soFar)] : []),
      h("div", { class: "columns" },
        h("section", { class: "card", id: "timeline" }, h("h2", {}, "Timeline"), timeline(events)),
        h("section", { class: "card", id: "analysis" }, h("h2", {}, "Analysis: canary vs stable"),
          charts(measurements)))];
  }

  function banner(r) {
    const bad = BAD_PHASES.has(r.phase);
    const kind = bad ? "bad" : r.phase === "succeeded" ? "good" : "live";
    const title = {
      rolled_back: `Rolled back: ${r.canary_version} did not replace ${r.stable_version || "—"}`,
      rolling_back: `Rolling back ${r.canary_version}`,
      aborted: `Aborted: ${r.canary_version}`,
      failed: `Failed: ${r.canary_version}`,
      succeeded: `Succeeded: ${r.canary_version} is stable`,
    }[r.phase] || `${r.phase}: ${r.canary_version} at ${r.weight}%`;
    return h("section", { class: `banner banner-${kind}`, id: "banner" },
      h("div", { class: "banner-title" }, badge(r.phase), h("span", {}, title)),
      r.reason
        ? h("p", { class: "banner-reason", id: "reason" }, r.reason)
        : h("p", { class: "banner-reason muted" }, "no reason recorded"));
  }

  function summary(r) {
    const steps = h("ol", { class: "steps" }, r.steps.map((step, i) => {
      const label = step.kind === "set_weight" ? `weight ${step.weight}%`
        : step.kind === "analysis" ? `analysis ×${step.count ?? "?"}`
        : step.kind === "eval_gate" ? `eval gate (${(step.checks || []).map((c) => c.score).join(", ")})`
        : step.kind === "evaluation" ? `evaluation (${step.suite}${step.suite_version ? "@" + step.suite_version : ""})`
        : step.kind === "bake" ? `bake ${step.duration_seconds}s at 100%`
          : step.kind === "pause" ? (step.duration_seconds ? `pause ${step.duration_seconds}s` : "pause") : step.kind;
      const state = i < r.step_index ? "done" : i === r.step_index ? "current" : "todo";
      return h("li", { class: `step step-${state}`, title: JSON.stringify(step) }, label);
    }));
    return h("section", { class: "card" },
      h("dl", { class: "facts" },
        fact("rollout", `#${r.id} of ${r.model}`),
        fact("canary → stable", `${r.canary_version} vs ${r.stable_version || "none"}`, "mono"),
        fact("weight in force", `${r.weight}%`),
        fact("started", [timeNode(r.created_at), ` by ${r.created_by}`]),
        fact("finished", r.finished_at ? timeNode(r.finished_at) : "not yet"),
        r.pending_command ? fact("pending command", r.pending_command) : null),
      h("div", { class: "steps-row" }, h("span", { class: "muted" }, "steps "), steps));
  }

  // the evaluation step's runs: the judgement, the cost, the items that regressed side by side
  function evaluationPanel(runs) {
    const mark = (side) => !side ? "—" : side.passed === null ? "no answer" : side.passed ? "pass" : "fail";
    return h("section", { class: "card", id: "evaluation" },
      h("h2", {}, "Evaluation: the same prompts to canary and stable"),
      runs.map((run) => {
        const result = run.result || {};
        const cost = run.cost || {};
        const costText = cost.prompts === undefined ? "" :
          `${cost.prompts} prompts, ${(cost.prompt_tokens || 0) + (cost.completion_tokens || 0)} tokens, ${cost.seconds}s` +
          (cost.reused ? `, ${cost.reused} stable answers reused` : "");
        const rows = run.items.map((item) => h("tr", { class: item.regressed ? "bad" : "" },
          h("td", { class: "mono" }, item.item_id),
          h("td", {}, item.tag),
          h("td", { class: "wrap" }, item.prompt),
          h("td", { class: "wrap" }, h("strong", {}, mark(item.stable)), " ", (item.stable && (item.stable.answer || item.stable.error)) || ""),
          h("td", { class: "wrap" }, h("strong", {}, mark(item.canary)), " ", (item.canary && (item.canary.answer || item.canary.error)) || "")));
        return h("div", { class: "evaluation-run", "data-run": run.id },
          h("p", {}, h("strong", {}, `Suite ${run.suite}`), `, step ${run.step_index}: ${run.status}. `,
            result.summary || run.error || `answered so far: canary ${run.answered.canary}, stable ${run.answered.stable} of ${run.items_total}`),
          costText ? h("p", { class: "muted" }, `Cost: ${costText}`) : null,
          rows.length
            ? h("table", { class: "grid compact" },
              h("thead", {}, h("tr", {}, ["item", "tag", "prompt", `stable ${run.stable_version || ""}`, `canary ${run.canary_version}`].map((t) => h("th", {}, t)))),
              h("tbody", {}, rows))
            : h("p", { class: "muted" }, "No item regressed."));
      }));
  }

  // an adapter rollout: which pod of the base pool holds the stable and canary adapters
  function placementPanel(p) {
    const holds = (pod, name) => !name ? "—" : pod.adapters === null ? "?"
      : pod.adapters.includes(name) ? "loaded" : "no";
    const rows = p.pods.map((pod) => h("tr", { class: pod.serving && (holds(pod, p.canary_adapter) === "no") ? "bad" : "" },
      h("td", { class: "mono" }, pod.pod),
      h("td", {}, pod.serving ? "yes" : "no"),
      h("td", {}, (pod.ready ? "yes" : "no") + (pod.gated ? " (gated)" : "")),
      h("td", {}, holds(pod, p.stable_adapter)),
      h("td", {}, holds(pod, p.canary_adapter)),
      h("td", { class: "mono" }, (pod.adapters || []).filter((a) => a !== p.stable_adapter && a !== p.canary_adapter).join(" ") || "—"),
      h("td", { class: "muted" }, pod.error || "")));
    return h("section", { class: "card", id: "placement" },
      h("h2", {}, `Adapters on base pool ${p.pool}`),
      h("p", { class: "muted" }, "As last read ", timeNode(p.observed_at), "; the timeline's placement events say when each moved."),
      p.pods.length
        ? h("table", { class: "grid compact" },
          h("thead", {}, h("tr", {}, ["pod", "serving", "ready", `stable ${p.stable_adapter || "—"}`,
            `canary ${p.canary_adapter}`, "other adapters", "error"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
        : h("p", { class: "muted" }, "No pod of the pool was found."));
  }

  // the events that explain the end: the analysis that failed and the move back
  function isBadEvent(e) {
    return BAD_PHASES.has(e.phase) || /fail|rolled?[_ ]back|abort/i.test(e.message);
  }

  function timeline(events) {
    if (!events.length) return h("p", { class: "muted" }, "No events.");
    // the last event in a bad phase carries the final reason; mark it as the one to read
    let key = -1;
    events.forEach((e, i) => { if (BAD_PHASES.has(e.phase)) key = i; });
    return h("ol", { class: "timeline" }, events.map((e, i) => {
      const evidence = e.evidence && Object.keys(e.evidence).length
        ? h("details", {}, h("summary", {}, "evidence"), h("pre", {}, JSON.stringify(e.evidence, null, 2)))
        : null;
      return h("li", {
        class: `event ${isBadEvent(e) ? "event-bad" : ""} ${i === key ? "event-key" : ""}`,
        "data-kind": e.type || e.kind,
      },
      h("div", { class: "event-head" },
        timeNode(e.at, true),
        h("span", { class: "actor" }, e.actor),
        h("span", { class: "kind" }, e.type || e.kind),
        badge(e.phase),
        h("span", { class: "muted" }, `step ${e.step_index} · ${e.weight}%`)),
      h("p", { class: "event-message" }, e.message),
      evidence);
    }));
  }

  // --- analysis so far: the evidence of a live analysis step ------------------------------

  // When the current step (re)started, from the events (newest first): the step event that
  // advanced into it (its evidence names the step it left), or a transition to progressing
  // in it (the rollout started, or was resumed: a resumed step starts over).
  function stepStartedAt(events, stepIndex) {
    for (const e of events) {
      if (e.step_index !== stepIndex) continue;
      const kind = e.type || e.kind;
      const evidence = e.evidence || {};
      if ((kind === "step" && evidence.step === stepIndex - 1) ||
        (kind === "transition" && evidence.to === "progressing")) return parseTime(e.at);
    }
    return null;
  }

  function maxDuration(step) {
    if (step.max_duration_seconds !== null && step.max_duration_seconds !== undefined) return step.max_duration_seconds;
    return Math.max(DEFAULT_MAX_ANALYSIS_SECONDS, step.count * step.interval_seconds);
  }

  // the current analysis step of a live rollout, its looks and its latest one (API lists,
  // newest first); null when the rollout has ended or is not at an analysis step
  function analysisSoFar(rollout, measurements, events, now) {
    let step = rollout.current_step;
    if (TERMINAL_PHASES.has(rollout.phase) || !step || (step.kind !== "analysis" && step.kind !== "bake")) return null;
    // the watch after promotion reads like a sequential analysis of its duration
    if (step.kind === "bake") step = { ...step, judge: "sequential", count: 1, max_duration_seconds: step.duration_seconds };
    const index = rollout.step_index;
    const mine = measurements.filter((m) => m.step_index === index);
    let started = (rollout.step_started_at && parseTime(rollout.step_started_at)) || stepStartedAt(events, index);
    if (!started && mine.length) started = parseTime(mine[mine.length - 1].at);
    const since = mine.filter((m) => !started || (parseTime(m.at) || now) >= started);
    const errors = since.filter((m) => m.verdict === "error").length;
    return {
      step, index, started, errors,
      judge: step.judge || "fixed",
      looks: since.length - errors,
      elapsed: started ? Math.max(0, (now - started.getTime()) / 1000) : null,
      latest: mine[0] || null,
    };
  }

  // a duration as 45s, 4m10s or 1h05m; an estimate as the judge words it
  function span(seconds) {
    const whole = Math.round(seconds);
    if (whole < 60) return `${whole}s`;
    if (whole < 3600) return `${Math.floor(whole / 60)}m${pad(whole % 60)}s`;
    return `${Math.floor(whole / 3600)}h${pad(Math.floor((whole % 3600) / 60))}m`;
  }
  function about(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "time unknown at the current rate";
    if (seconds < 90) return `~${seconds.toFixed(0)}s`;
    if (seconds < 5400) return `~${(seconds / 60).toFixed(0)} min`;
    return `~${(seconds / 3600).toFixed(1)} h`;
  }

  const isRatio = (m) => RATIO_METRICS.has(m.metric) || / pts/.test(m.message || "");
  const signed = (text, v) => (v < 0 ? `-${text}` : `+${text}`);
  function effectText(m, v) {
    return isRatio(m) ? `${signed(Math.abs(v * 100).toFixed(2), v)} pts` : `${signed(Math.abs(v * 100).toFixed(1), v)}%`;
  }
  function marginText(m) {
    if (num(m.margin) === null) return m.p_value === null || m.p_value === undefined ? "" : `p=${Number(m.p_value.toPrecision(3))}`;
    return isRatio(m) ? `margin ${(m.margin * 100).toFixed(2)} pts` : `margin ${Number((m.margin * 100).toPrecision(6))}%`;
  }
  // the metric as the judge names it in its message ("ttft p95"), else its name
  function metricLabel(m) {
    const message = m.message || "";
    const cut = message.indexOf(": ");
    const head = cut < 0 ? "" : message.slice(0, cut);
    return head && head.startsWith(m.metric) && head.length <= m.metric.length + 8 ? head : m.metric;
  }
  function messageTail(m) {
    const text = (m.message || "").split(/\s+/).join(" ").trim();
    const cut = text.indexOf(": ");
    return cut < 0 ? text : text.slice(cut + 2);
  }
  // what the metric still needs before it can pass, or why it decided
  function needsText(m) {
    const reason = m.inconclusive || null;
    if (m.verdict === "fail" || m.verdict === "error" || (m.verdict === "inconclusive" && !reason)) return messageTail(m);
    if (m.verdict === "pass") return num(m.power) === null ? "" : `enough traffic (${Math.round(m.power * 100)}% chance to have caught it)`;
    if (reason !== "too_few" || (num(m.needed) === null && num(m.effect) === null)) return INCONCLUSIVE_WORDS[reason] || reason;
    if (num(m.needed) === null) return "can never pass: the margin and the pods' spread leave no room";
    const unit = /canary intervals/.test(m.message || "") ? "intervals" : "requests";
    return `needs ~${Math.ceil(m.needed)} more canary ${unit} (${about(num(m.eta_seconds))})`;
  }

  // the effect's interval against the margin: the failing side shaded, zero and the margin
  // as vertical lines, the interval as a segment, the point estimate as a dot
  function effectBar(m) {
    const effect = num(m.effect), lower = num(m.effect_lower), upper = num(m.effect_upper), margin = num(m.margin);
    if (effect === null) return h("span", { class: "muted" }, "—");
    const W = 220, H = 26, P = 8, mid = 13;
    const known = [0, effect, lower, upper, margin].filter((v) => v !== null);
    let lo = Math.min(...known), hi = Math.max(...known);
    const room = (hi - lo) * 0.08 || 0.01;
    lo -= room; hi += room;
    const xs = (v) => P + ((v - lo) / (hi - lo)) * (W - 2 * P);
    const title = `effect ${effectText(m, effect)}` +
      (lower !== null && upper !== null ? `, always-valid interval ${effectText(m, lower)} to ${effectText(m, upper)}` : "") +
      (margin !== null ? `; fails when the interval lies wholly beyond ${effectText(m, margin)}` : "");
    return svg("svg", {
      viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: `effect-bar effect-bar-${m.verdict}`,
      role: "img", "aria-label": title, "data-metric": m.metric,
    },
    svg("title", {}, title),
    margin !== null ? svg("rect", { x: xs(margin), y: 2, width: Math.max(0, W - P - xs(margin)), height: H - 4, class: "bar-fail-zone" }) : null,
    svg("line", { x1: P, x2: W - P, y1: mid, y2: mid, class: "bar-axis" }),
    svg("line", { x1: xs(0), x2: xs(0), y1: 4, y2: H - 4, class: "bar-zero" }),
    margin !== null ? svg("line", { x1: xs(margin), x2: xs(margin), y1: 1, y2: H - 1, class: "bar-margin", "data-margin": margin }) : null,
    lower !== null && upper !== null
      ? svg("g", { class: "bar-interval", "data-lower": lower, "data-upper": upper },
        svg("line", { x1: xs(lower), x2: xs(upper), y1: mid, y2: mid }),
        svg("line", { x1: xs(lower), x2: xs(lower), y1: mid - 5, y2: mid + 5 }),
        svg("line", { x1: xs(upper), x2: xs(upper), y1: mid - 5, y2: mid + 5 }))
      : null,
    svg("circle", { cx: xs(effect), cy: mid, r: 4.5, class: "bar-effect", "data-effect": effect }));
  }

  function analysisPanel(so) {
    const { step, latest } = so;
    const looks = so.judge === "sequential"
      ? `look ${so.looks} of at least ${step.count}`
      : `look ${so.looks} of ${step.count}`;
    const limit = so.judge === "sequential"
      ? `of at most ${span(maxDuration(step))}`
      : `of about ${span(step.count * step.interval_seconds)}`;
    const progress = h("p", { class: "analysis-progress", id: "analysis-progress" },
      `step ${so.index} · ${so.judge} judge, every ${step.interval_seconds}s · ${looks}`,
      so.errors ? ` (${so.errors} could not be taken)` : "",
      ` · ${so.elapsed === null ? "elapsed unknown" : span(so.elapsed)} ${limit}`);
    if (!latest) {
      return h("section", { class: "card analysis-live", id: "analysis-live" },
        h("h2", {}, "Analysis so far"), progress, h("p", { class: "muted" }, "No look taken yet in this step."));
    }
    const earlier = so.started && parseTime(latest.at) < so.started ? " (before the step restarted)" : "";
    const metrics = latest.metrics || [];
    const rows = metrics.map((m) => {
      const effect = num(m.effect);
      const interval = num(m.effect_lower) !== null && num(m.effect_upper) !== null
        ? ` [${effectText(m, m.effect_lower)}, ${effectText(m, m.effect_upper)}]` : "";
      const values = num(m.canary_value) !== null && num(m.stable_value) !== null
        ? `canary ${fmt(m.canary_value, isRatio(m) ? "%" : "")} vs stable ${fmt(m.stable_value, isRatio(m) ? "%" : "")}` : "—";
      const pods = Array.isArray(m.pods) && m.pods.length === 2
        ? `${m.pods[0]} / ${m.pods[1]}${num(m.pod_spread) === null ? "" : ` · spread ${(m.pod_spread * 100).toFixed(1)}%`}` : "—";
      return h("tr", { "data-metric": m.metric, "data-judge": m.judge || "fixed", class: `verdict-${m.verdict}` },
        h("td", { class: "mono strong" }, metricLabel(m)),
        h("td", {}, badge(m.verdict)),
        h("td", { class: "num effect" }, effect === null ? values : `${effectText(m, effect)}${interval}`),
        h("td", { class: "bar" }, effectBar(m)),
        h("td", { class: "num margin" }, marginText(m)),
        h("td", { class: "num samples" }, [m.canary_samples, m.stable_samples].map((n) => (Number.isFinite(n) ? Math.round(n) : "—")).join(" / ")),
        h("td", { class: "num pods" }, pods),
        h("td", { class: `needs ${m.verdict === "fail" ? "error" : ""}` }, needsText(m)));
    });
    const decided = latest.verdict === "fail" || latest.verdict === "pass";
    return h("section", { class: "card analysis-live", id: "analysis-live" },
      h("h2", {}, "Analysis so far"),
      progress,
      h("p", { class: "muted small" },
        "latest look ", timeNode(latest.at, true), `${earlier} at ${latest.weight}%: `, badge(latest.verdict),
        so.judge === "sequential"
          ? " · a metric fails when its always-valid interval lies wholly beyond the margin (the red line), and passes once the step has had the traffic to catch the regression it names"
          : ""),
      metrics.length
        ? h("table", { class: "grid live-metrics", id: "live-metrics" },
          h("thead", {}, h("tr", {}, ["metric", "verdict", "effect [interval]", "against the margin", "margin", "n canary / stable", "pods / spread", "still needs"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
        : h("p", { class: "muted" }, latest.summary),
      decided
        ? h("p", { class: latest.verdict === "fail" ? "verdict-fail-line" : "verdict-pass-line", id: "deciding" }, `deciding: ${latest.summary}`)
        : null);
  }

  // --- charts ----------------------------------------------------------------------------

  // the judge's rule for one metric, from a measurement's message when it states it
  function ruleOf(metric, message) {
    const builtin = BUILTIN_RULES[metric] || null;
    const text = message || "";
    // an eval gate's score: "(+0.01; higher is better, at most 0.01 worse)", in its own units
    const score = /(higher|lower) is better, at most (\d+(?:\.\d+)?(?:e[+-]?\d+)?) worse\)/.exec(text);
    if (score) {
      return { kind: score[1] === "higher" ? "score_drop" : "score_rise", margin: parseFloat(score[2]), unit: "", from: "message" };
    }
    // any other eval gate message (a floor, a ceiling, a missing score): no live-metric rule
    if (/(within bounds|below the floor|above the ceiling|has no eval score|nothing to compare with)/.test(text)) return null;
    const found = /margin ([+-]?\d+(?:\.\d+)?)%/.exec(text);
    if (!found) return builtin ? { ...builtin, from: "default" } : null;
    const margin = Math.abs(parseFloat(found[1])) / 100;
    let kind;
    if (/higher is better/.test(text)) kind = "lower";
    else if (/canary -?\d[\d.e+-]*% vs stable/.test(text)) kind = "absolute";
    else kind = builtin ? builtin.kind : "relative";
    return { kind, margin, unit: kind === "absolute" ? "%" : builtin ? builtin.unit : "", from: "message" };
  }

  // the sequential judge records its margin: relative for latencies and scalars (lower for
  // higher-is-better scalars), absolute for ratios
  function recordedRule(metric) {
    if (metric.judge !== "sequential" || num(metric.margin) === null) return null;
    const builtin = BUILTIN_RULES[metric.metric] || {};
    if (isRatio(metric)) return { kind: "absolute", margin: metric.margin, unit: "%", from: "record" };
    const kind = /higher is better/.test(metric.message || "") ? "lower" : "relative";
    return { kind, margin: metric.margin, unit: builtin.unit || "", from: "record" };
  }

  function thresholdOf(rule, stable) {
    if (!rule || stable === null || stable === undefined || !Number.isFinite(stable)) return null;
    if (rule.kind === "absolute" || rule.kind === "score_rise") return stable + rule.margin;
    if (rule.kind === "score_drop") return stable - rule.margin;
    if (rule.kind === "lower") return stable - Math.abs(stable) * rule.margin;
    return stable * (1 + rule.margin);
  }

  function describeRule(rule) {
    if (!rule) return "no margin known: no threshold drawn";
    if (rule.kind === "score_drop") return `fails below stable − ${fmt(rule.margin, "")} (eval score, higher is better)`;
    if (rule.kind === "score_rise") return `fails above stable + ${fmt(rule.margin, "")} (eval score, lower is better)`;
    const m = rule.kind === "absolute" ? `${(rule.margin * 100).toFixed(2)} points` : `${Math.round(rule.margin * 100)}%`;
    const how = {
      relative: `fails above stable × ${(1 + rule.margin).toFixed(2)} (margin ${m})`,
      absolute: `fails above stable + ${m}`,
      lower: `fails below stable × ${(1 - rule.margin).toFixed(2)} (higher is better, margin ${m})`,
    }[rule.kind];
    return `${how}${rule.from === "default" ? ", the built-in default" : ""}`;
  }

  function fmt(value, unit) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    if (unit === "%") return `${(value * 100).toFixed(2)}%`;
    const text = Math.abs(value) >= 1000 ? value.toFixed(0) : Number(value.toPrecision(4)).toString();
    return unit ? `${text} ${unit}` : text;
  }

  function niceStep(span) {
    const raw = span / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    const unit = raw / power;
    return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 2.5 ? 2.5 : unit <= 5 ? 5 : 10) * power;
  }

  function charts(measurements) {
    if (!measurements.length) return h("p", { class: "muted" }, "No analysis measurements for this rollout.");
    const byMetric = new Map();
    measurements.forEach((m, index) => {
      for (const metric of m.metrics || []) {
        if (!byMetric.has(metric.metric)) byMetric.set(metric.metric, []);
        byMetric.get(metric.metric).push({ index, measurement: m, metric });
      }
    });
    const failing = measurements.filter((m) => m.verdict === "fail");
    return [
      h("p", { class: "muted small" },
        `${measurements.length} measurement(s); x = measurement (time, weight). `,
        measurements.some((m) => (m.metrics || []).some((x) => x.judge === "sequential"))
          ? "Sequential judge: a metric fails when the always-valid interval on its effect lies wholly beyond the margin (the values' interval column)."
          : "A latency fails when the canary is over the threshold and the test says it is not chance (p < α)."),
      failing.length
        ? h("p", { class: "verdict-fail-line" }, `failed: ${failing[failing.length - 1].summary}`)
        : null,
      [...byMetric.entries()].map(([name, points]) => chart(name, points, measurements.length)),
    ];
  }

  function chart(name, points, count) {
    const rules = points.map((p) => recordedRule(p.metric) || ruleOf(name, p.metric.message));
    const stated = (r) => r && (r.from === "record" || r.from === "message");
    const rule = rules.find(stated) || rules.find(Boolean) || null;
    const unit = rule ? rule.unit : (BUILTIN_RULES[name] || {}).unit || "";
    const rows = points.map((p, i) => ({
      x: p.index,
      at: p.measurement.at,
      weight: p.measurement.weight,
      verdict: p.metric.verdict,
      canary: num(p.metric.canary_value),
      stable: num(p.metric.stable_value),
      // the judge's own line when it recorded one; else derived from the verdict's message
      threshold: num(p.metric.threshold) ?? thresholdOf(rules[i] || rule, num(p.metric.stable_value)),
      p: num(p.metric.p_value),
      lower: num(p.metric.effect_lower),
      upper: num(p.metric.effect_upper),
      effect: num(p.metric.effect),
      metric: p.metric,
      n: [p.metric.canary_samples, p.metric.stable_samples],
      message: p.metric.message,
    }));

    const W = 640, H = 240, L = 64, R = 16, T = 14, B = 40;
    const values = rows.flatMap((r) => [r.canary, r.stable, r.threshold]).filter((v) => v !== null);
    let lo = Math.min(0, ...values), hi = Math.max(...values, 0);
    if (hi === lo) hi = lo + 1;
    const step = niceStep(hi - lo);
    hi = Math.ceil((hi * 1.08) / step) * step;
    lo = Math.floor(lo / step) * step;
    const xs = (x) => count <= 1 ? L + (W - L - R) / 2 : L + 24 + (x / (count - 1)) * (W - L - R - 48);
    const ys = (y) => T + (1 - (y - lo) / (hi - lo)) * (H - T - B);

    const grid = [];
    for (let v = lo; v <= hi + step / 2; v += step) {
      grid.push(svg("line", { x1: L, x2: W - R, y1: ys(v), y2: ys(v), class: "gridline" }));
      grid.push(svg("text", { x: L - 6, y: ys(v) + 4, class: "tick", "text-anchor": "end" }, fmt(v, unit === "%" ? "%" : "")));
    }
    const labelEvery = Math.max(1, Math.ceil(rows.length / 8));
    const xLabels = rows.map((r, i) => i % labelEvery === 0 || i === rows.length - 1
      ? svg("text", { x: xs(r.x), y: H - B + 16, class: "tick", "text-anchor": "middle" }, `#${r.x + 1} ${clock(r.at)}`)
      : null);
    const xWeights = rows.map((r, i) => i % labelEvery === 0 || i === rows.length - 1
      ? svg("text", { x: xs(r.x), y: H - B + 30, class: "tick muted", "text-anchor": "middle" }, `${r.weight}%`)
      : null);

    // a line through the points (a short level segment when there is only one)
    function line(key, cls) {
      const pts = rows.filter((r) => r[key] !== null);
      if (!pts.length) return null;
      const coords = pts.length === 1
        ? [[xs(pts[0].x) - 40, ys(pts[0][key])], [xs(pts[0].x) + 40, ys(pts[0][key])]]
        : pts.map((r) => [xs(r.x), ys(r[key])]);
      return svg("polyline", { points: coords.map((c) => c.join(",")).join(" "), class: `line ${cls}` });
    }
    // the failing side of the threshold, shaded
    let zone = null;
    const tpts = rows.filter((r) => r.threshold !== null);
    if (tpts.length && rule) {
      const below = rule.kind === "lower" || rule.kind === "score_drop";  // fails below the line
      const edge = below ? ys(lo) : ys(hi);
      const coords = tpts.length === 1
        ? [[xs(tpts[0].x) - 40, ys(tpts[0].threshold)], [xs(tpts[0].x) + 40, ys(tpts[0].threshold)]]
        : tpts.map((r) => [xs(r.x), ys(r.threshold)]);
      const poly = [...coords, [coords[coords.length - 1][0], edge], [coords[0][0], edge]];
      zone = svg("polygon", { points: poly.map((c) => c.join(",")).join(" "), class: "fail-zone" });
    }
    const dots = (key, cls) => rows.filter((r) => r[key] !== null).map((r) => {
      const fail = key === "canary" && r.verdict === "fail";
      const unsure = key === "canary" && (r.verdict === "inconclusive" || r.verdict === "error");
      return svg("circle", {
        cx: xs(r.x), cy: ys(r[key]), r: fail ? 6.5 : 4,
        class: `dot ${cls} ${fail ? "dot-fail" : ""} ${unsure ? "dot-unsure" : ""}`,
        "data-verdict": key === "canary" ? r.verdict : null,
      }, svg("title", {}, `${key} ${fmt(r[key], unit)} · #${r.x + 1} ${stamp(r.at)} · ${r.verdict}`));
    });
    const failLabels = rows.filter((r) => r.verdict === "fail" && r.canary !== null).map((r) =>
      svg("text", { x: xs(r.x) + 10, y: ys(r.canary) - 8, class: "fail-label" }, `FAIL ${fmt(r.canary, unit)}`));

    const graphic = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-metric": name,
      "aria-label": `${name}: canary vs stable with threshold`,
    },
    zone, grid,
    svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }),
    svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }),
    svg("g", { class: "series series-threshold", "data-series": "threshold" }, line("threshold", "threshold"), dots("threshold", "threshold")),
    svg("g", { class: "series series-stable", "data-series": "stable" }, line("stable", "stable"), dots("stable", "stable")),
    svg("g", { class: "series series-canary", "data-series": "canary" }, line("canary", "canary"), dots("canary", "canary")),
    failLabels, xLabels, xWeights);

    const last = rows[rows.length - 1];
    const worst = rows.find((r) => r.verdict === "fail") || last;
    const table = h("details", { class: "points" }, h("summary", {}, "values"),
      h("table", { class: "grid compact" },
        h("thead", {}, h("tr", {}, ["#", "time", "weight", "verdict", "canary", "stable", "threshold", "interval", "p", "n canary/stable"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows.map((r) => h("tr", {},
          h("td", {}, `${r.x + 1}`), h("td", {}, clock(r.at)), h("td", { class: "num" }, `${r.weight}%`),
          h("td", {}, badge(r.verdict)), h("td", { class: "num" }, fmt(r.canary, unit)),
          h("td", { class: "num" }, fmt(r.stable, unit)), h("td", { class: "num" }, fmt(r.threshold, unit)),
          h("td", {
            class: "num interval",
            title: r.effect === null ? null : `effect ${effectText(r.metric, r.effect)}`,
          }, r.lower === null || r.upper === null ? "—" : `${effectText(r.metric, r.lower)} .. ${effectText(r.metric, r.upper)}`),
          h("td", { class: "num" }, r.p === null ? "—" : Number(r.p.toPrecision(3)).toString()),
          h("td", { class: "num" }, r.n.map((n) => (Number.isFinite(n) ? Math.round(n) : "—")).join(" / ")))))));

    return h("figure", { class: `metric ${rows.some((r) => r.verdict === "fail") ? "metric-fail" : ""}`, "data-metric": name },
      h("figcaption", {},
        h("span", { class: "metric-name" }, name), badge(worst.verdict),
        h("span", { class: "legend" },
          h("span", { class: "key key-canary" }, "canary"),
          h("span", { class: "key key-stable" }, "stable"),
          h("span", { class: "key key-threshold" }, "threshold")),
        h("div", { class: "rule muted small" }, describeRule(rule))),
      graphic,
      h("p", { class: `metric-message ${worst.verdict === "fail" ? "error" : "muted"}` }, worst.message || ""),
      table);
  }

  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

  // --- routing ---------------------------------------------------------------------------

  let generation = 0;
  async function route() {
    if (!token()) {
      showLogin("");
      return;
    }
    signedIn();
    const mine = ++generation;
    const hash = location.hash.replace(/^#\/?/, "");
    const [kind, arg] = hash.split("/").map(decodeURIComponent);
    showStatus("Loading…", "loading");
    try {
      const nodes = kind === "models" && arg ? await modelView(arg)
        : kind === "rollouts" && arg ? await rolloutView(arg)
          : await modelsView();
      if (mine !== generation) return; // a newer navigation won
      $("view").replaceChildren(...nodes.flat());
      showStatus("");
      document.body.dataset.ready = location.hash || "#/";
    } catch (error) {
      if (mine !== generation) return;
      $("view").replaceChildren();
      failed(error);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("token");
      const value = input.value.trim();
      input.value = "";
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      try {
        await api("/v1/models?limit=1");
      } catch (error) {
        failed(error);
        return;
      }
      route();
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("Token forgotten.");
    });
    window.addEventListener("hashchange", route);
    route();
  });
})();
