// The live status page: polls /status and /events on its own origin and renders them. Every value from the
// autoscaler (rule names are the operator's, reasons and errors the code's) goes into the page as text
// (textContent, setAttribute with numbers), never as markup; the Content-Security-Policy forbids inline script.
"use strict";

(() => {
  const POLL_MS = 1500;
  const CHART_SECONDS = 600;
  const KEPT_EVENTS = 5000; // what the autoscaler keeps at most: the page keeps no more
  const SVG_NS = "http://www.w3.org/2000/svg";

  let history = []; // events, oldest first, the last CHART_SECONDS of them
  let lastSeq = 0;

  const byId = (id) => document.getElementById(id);

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  function number(value) {
    if (value === null || value === undefined) return "\u2013";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    return String(Number(value.toPrecision(4)));
  }

  function seconds(value) {
    return value === null || value === undefined ? "\u2013" : `${number(value)} s`;
  }

  function clock(unixSeconds) {
    const at = new Date(unixSeconds * 1000);
    return [at.getHours(), at.getMinutes(), at.getSeconds()].map((part) => String(part).padStart(2, "0")).join(":");
  }

  function row(cells, classNames) {
    const tr = document.createElement("tr");
    cells.forEach((cell, index) => {
      const td = element("td", null, classNames && classNames[index]);
      if (cell instanceof Node) td.append(cell);
      else td.textContent = cell;
      tr.append(td);
    });
    return tr;
  }

  function fillTable(id, rows) {
    byId(id).tBodies[0].replaceChildren(...rows);
  }

  function list(items, emptyText) {
    return items.length ? items.map((item) => element("li", item)) : [element("li", emptyText, "muted")];
  }

  async function readJson(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
    return response.json();
  }

  function keep(events) {
    for (const event of events) {
      if (event.seq > lastSeq) {
        history.push(event);
        lastSeq = event.seq;
      }
    }
    const newest = history.length ? history[history.length - 1].time : 0;
    history = history.filter((event) => event.time >= newest - CHART_SECONDS).slice(-KEPT_EVENTS);
  }

  async function poll() {
    try {
      const status = await readJson("status");
      if (status.seq < lastSeq) {
        // A restarted autoscaler numbers its evaluations from 1 again: what the page kept is another run's.
        history = [];
        lastSeq = 0;
      }
      let url = `events?since=${lastSeq}`;
      if (lastSeq === 0) {
        // A freshly opened page asks for the last minutes the autoscaler kept, not for everything it kept.
        const wanted = Math.ceil(CHART_SECONDS / status.policy.interval_s) + 1;
        url += `&last=${Math.min(KEPT_EVENTS, wanted)}`;
      }
      keep((await readJson(url)).events);
      render(status);
      const connection = byId("connection");
      connection.className = "connection";
      connection.textContent = `read at ${clock(Date.now() / 1000)}; ${history.length} evaluations in view`;
    } catch (error) {
      const connection = byId("connection");
      connection.className = "connection failing";
      connection.textContent = `cannot read the autoscaler: ${error.message}`;
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }

  function render(status) {
    renderReplicas(status);
    renderDecisions(status);
    renderRules(status);
    renderSchedules(status);
    renderVms(status);
    renderServers(status);
    renderCharts(status);
  }

  function renderReplicas(status) {
    const policy = status.policy;
    byId("current").textContent = number(status.current);
    byId("desired").textContent = number(status.desired);
    byId("ready").textContent = number(status.ready);
    byId("min").textContent = number(policy.min_replicas);
    byId("max").textContent = number(policy.max_replicas);
    byId("mode").textContent = policy.dry_run ? "dry run: decisions are not applied" : "";
    const last = history.length ? history[history.length - 1] : null;
    byId("last-time").textContent = last ? `at ${clock(last.time)} (#${last.seq})` : "none yet";
    byId("reasons").replaceChildren(...list(status.reasons, "waiting for the first evaluation"));
    byId("stuck").replaceChildren(...list(status.stuck, "nothing"));
  }

  const VERBS = { up: ["scaled out", "would scale out"], down: ["scaled in", "would scale in"] };

  function change(event, dryRun) {
    if (!Object.hasOwn(VERBS, event.direction)) return [`held at ${event.current}`, ""];
    const [done, wanted] = VERBS[event.direction];
    const counts = `${event.current} \u2192 ${event.desired}`;
    if (event.acted) return [`${done} ${counts}`, event.direction];
    return [`${wanted} ${counts}${dryRun ? " (dry run)" : ""}`, event.direction];
  }

  function renderDecisions(status) {
    const changes = [...status.last_changes].reverse();
    fillTable(
      "decisions",
      changes.map((event) => {
        const [text, direction] = change(event, status.policy.dry_run);
        const reasons = document.createElement("ul");
        reasons.replaceChildren(...list(event.reasons, "no reason given"));
        const notes = [...(event.error ? [event.error] : []), ...event.vm_steps];
        const tr = row([clock(event.time), text, reasons, notes.join("; ")], ["", direction, "", event.error ? "error" : ""]);
        tr.dataset.seq = String(event.seq);
        return tr;
      }),
    );
    byId("no-decisions").hidden = changes.length > 0;
  }

  function renderRules(status) {
    const policy = status.policy;
    const metrics = status.metrics || {};
    byId("policy-summary").textContent =
      `replicas ${policy.min_replicas} to ${policy.max_replicas}, a decision every ${number(policy.interval_s)} s, ` +
      `metrics older than ${number(policy.metrics_max_age_s)} s are stale, tolerance ${number(policy.tolerance)}`;
    fillTable(
      "targets",
      policy.targets.map((rule) => row([rule.name, rule.metric, number(rule.target), number(metrics[rule.metric])])),
    );
    fillTable(
      "steps",
      policy.steps.map((rule) =>
        row([
          rule.name,
          rule.metric,
          `${rule.comparison} ${number(rule.threshold)}`,
          seconds(rule.for_s),
          rule.change > 0 ? `+${rule.change}` : String(rule.change),
          number(metrics[rule.metric]),
        ]),
      ),
    );
    fillTable(
      "directions",
      [
        ["scale out", policy.scale_up],
        ["scale in", policy.scale_down],
      ].map(([name, limits]) => {
        const steps = [];
        if (limits.max_step !== null) steps.push(`${limits.max_step} replica${limits.max_step === 1 ? "" : "s"}`);
        if (limits.max_step_percent !== null) steps.push(`${number(limits.max_step_percent)} %`);
        return row([
          name,
          seconds(limits.stabilization_s),
          steps.join(" or ") || "no limit",
          seconds(limits.cooldown_s),
          number(limits.tolerance),
        ]);
      }),
    );
    const windows = policy.windows;
    byId("windows").textContent = windows
      ? `HAProxy read every ${number(windows.sample_interval_s)} s; stable window ${number(windows.stable_s)} s, ` +
        `panic window ${number(windows.panic_s)} s at ${number(windows.panic_threshold)}\u00d7 the ready replicas`
      : "none: one read of HAProxy per decision, no panic mode";
  }

  function cellText(value) {
    if (value === null || value === undefined) return "\u2013";
    if (typeof value === "object") return JSON.stringify(value);
    return number(value);
  }

  function renderSchedules(status) {
    // Another part of the autoscaler adds `schedules` to /status; the page shows whatever entries it has.
    const schedules = Array.isArray(status.schedules)
      ? status.schedules
      : Array.isArray(status.policy.schedules)
        ? status.policy.schedules
        : [];
    byId("schedules-section").hidden = schedules.length === 0;
    const entries = schedules.map((entry) => (entry !== null && typeof entry === "object" ? entry : { value: entry }));
    const columns = [...new Set(entries.flatMap((entry) => Object.keys(entry)))];
    const table = byId("schedules");
    table.tHead.rows[0].replaceChildren(...columns.map((column) => element("th", column.replaceAll("_", " "))));
    fillTable(
      "schedules",
      entries.map((entry) => row(columns.map((column) => cellText(entry[column])))),
    );
  }

  function renderVms(status) {
    const vms = Object.entries(status.vms || {});
    byId("vms-summary").textContent =
      status.vms_running === null ? "this stack has no VMs" : `${status.vms_running} of ${vms.length} running`;
    byId("vms").hidden = vms.length === 0;
    fillTable(
      "vms",
      vms.map(([name, state]) => row([name, state])),
    );
  }

  function renderServers(status) {
    fillTable(
      "servers",
      Object.entries(status.servers || {}).map(([name, state]) => row([name, state])),
    );
  }

  function niceCeiling(value) {
    if (value <= 0) return 1;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
    return 10 * magnitude;
  }

  // One chart: lines over the last CHART_SECONDS (x: seconds before the newest evaluation, on the autoscaler's
  // clock, so a browser whose clock differs draws the same), and level lines for limits, targets, thresholds.
  function drawChart(svg, title, series, levels) {
    const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
    const left = 44;
    const right = 8;
    const top = 18;
    const bottom = 20;
    const values = [...series.flatMap((line) => line.points.map(([, value]) => value)), ...levels.map((level) => level.value)];
    const yMax = niceCeiling(Math.max(0, ...values.filter(Number.isFinite)));
    const x = (ago) => left + ((CHART_SECONDS + ago) / CHART_SECONDS) * (width - left - right);
    const y = (value) => top + (1 - value / yMax) * (height - top - bottom);
    const nodes = [svgElement("text", { x: left, y: 12, class: "title" })];
    nodes[0].textContent = title;
    for (const fraction of [0, 0.5, 1]) {
      const at = y(yMax * fraction);
      nodes.push(svgElement("line", { x1: left, x2: width - right, y1: at, y2: at, class: "grid" }));
      const label = svgElement("text", { x: left - 4, y: at + 4, "text-anchor": "end", class: "axis" });
      label.textContent = number(yMax * fraction);
      nodes.push(label);
    }
    for (const [ago, text] of [[-CHART_SECONDS, `-${CHART_SECONDS / 60} min`], [-CHART_SECONDS / 2, `-${CHART_SECONDS / 120} min`], [0, "now"]]) {
      const anchor = ago === 0 ? "end" : ago === -CHART_SECONDS ? "start" : "middle";
      const label = svgElement("text", { x: x(ago), y: height - 4, "text-anchor": anchor, class: "axis" });
      label.textContent = text;
      nodes.push(label);
    }
    for (const level of levels) {
      const at = y(level.value);
      const line = svgElement("line", { x1: left, x2: width - right, y1: at, y2: at, class: "limit" });
      line.dataset.level = level.name;
      nodes.push(line);
    }
    for (const line of series) {
      const polyline = svgElement("polyline", {
        class: line.className,
        points: line.points.map(([ago, value]) => `${x(ago).toFixed(1)},${y(value).toFixed(1)}`).join(" "),
      });
      polyline.dataset.series = line.name;
      polyline.dataset.samples = String(line.points.length);
      nodes.push(polyline);
    }
    svg.replaceChildren(...nodes);
  }

  function renderCharts(status) {
    const policy = status.policy;
    const newest = history.length ? history[history.length - 1].time : 0;
    const pointsOf = (read) =>
      history.map((event) => [event.time - newest, read(event)]).filter(([, value]) => Number.isFinite(value));
    byId("chart-minutes").textContent = String(CHART_SECONDS / 60);
    drawChart(
      byId("replicas-chart"),
      "replicas",
      ["desired", "ready", "current"].map((kind) => ({
        name: kind,
        className: kind,
        points: pointsOf((event) => event[kind]),
      })),
      [
        { name: "min", value: policy.min_replicas },
        { name: "max", value: policy.max_replicas },
      ],
    );
    const metricNames = [
      ...new Set([
        ...policy.targets.map((rule) => rule.metric),
        ...policy.steps.map((rule) => rule.metric),
        ...history.flatMap((event) => Object.keys(event.metrics)),
      ]),
    ].sort();
    const container = byId("metric-charts");
    const charts = metricNames.map((metric) => {
      let svg = [...container.children].find((child) => child.dataset.metric === metric);
      if (!svg) svg = svgElement("svg", { viewBox: "0 0 960 140", class: "chart", role: "img" });
      svg.dataset.metric = metric;
      svg.setAttribute("aria-label", `${metric} over time`);
      const levels = [
        ...policy.targets.filter((rule) => rule.metric === metric).map((rule) => ({ name: `target ${rule.name}`, value: rule.target })),
        ...policy.steps.filter((rule) => rule.metric === metric).map((rule) => ({ name: `step ${rule.name}`, value: rule.threshold })),
      ];
      const rules = levels.map((level) => `${level.name} ${number(level.value)}`).join(", ");
      drawChart(svg, rules ? `${metric} (${rules})` : metric, [{ name: metric, className: "value", points: pointsOf((event) => event.metrics[metric]) }], levels);
      return svg;
    });
    container.replaceChildren(...charts);
  }

  poll();
})();
