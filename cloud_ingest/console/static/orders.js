// The work-order board and the order page. Both follow GET /api/v1/stream with EventSource (the
// session cookie signs it in). On the board, every `work_order` event fetches that order's card
// again as server-rendered HTML (with the board's filters; 204: it leaves the board) and puts it
// in the column of its state, the earliest due first; every card counts down to its due time each
// second. On the order page, an event of this order fetches the page's content again, and the
// action buttons (exactly the API's `allowed_actions`) post to POST /api/v1/work-orders/{id}/actions
// with the CSRF header; a refusal shows the API's problem document (409: the allowed actions,
// 412: the order moved on, 422: what is missing).
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("orders-config").textContent);
  const texts = JSON.parse(document.getElementById("orders-texts").textContent);
  const body = document.body;
  const csrfHeaders = JSON.parse(body.getAttribute("hx-headers") || "{}");
  const RETRY_MS = 1500;
  const text = (key) => texts[key] || key;

  const state = {
    lastId: config.resume === null || config.resume === undefined ? null : String(config.resume),
    source: null,
    retry: null,
    seen: {},
    moves: 0,
    pending: new Map(),
  };
  window.stewardOrders = state;

  // --- SLA countdown --------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");

  function span(ms) {
    const total = Math.floor(Math.abs(ms) / 1000);
    const days = Math.floor(total / 86400);
    const h = Math.floor((total % 86400) / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const clock = `${pad(h)}:${pad(m)}:${pad(s)}`;
    return days > 0 ? `${days}${text("orders.js.days")} ${clock}` : clock;
  }

  function tickSla() {
    const now = Date.now();
    for (const holder of document.querySelectorAll("[data-due]")) {
      const cell = holder.querySelector("[data-sla]");
      if (!cell || holder.dataset.due === "") continue;
      const left = Number(holder.dataset.due) - now;
      const overdue = left < 0;
      cell.textContent = `${text(overdue ? "orders.js.overdue" : "orders.js.left")} ${span(left)}`;
      holder.classList.toggle("overdue", overdue);
      holder.classList.toggle("due-soon", !overdue && left < 15 * 60 * 1000);
    }
  }

  // --- the board ------------------------------------------------------------------------------

  const columns = document.getElementById("wo-columns");

  function cardKey(card) {
    const due = card.dataset.due === "" ? Infinity : Number(card.dataset.due);
    return [card.dataset.due === "" ? 1 : 0, due, Number(card.dataset.id)];
  }

  function before(a, b) {
    const ka = cardKey(a);
    const kb = cardKey(b);
    for (let i = 0; i < ka.length; i += 1) {
      if (ka[i] !== kb[i]) return ka[i] < kb[i];
    }
    return false;
  }

  function counts() {
    let total = 0;
    for (const column of columns.querySelectorAll("[data-column]")) {
      const n = column.querySelectorAll(".wo-card").length;
      column.querySelector("[data-count]").textContent = String(n);
      total += n;
    }
    document.getElementById("wo-total").textContent = String(total);
  }

  function fromHtml(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function putCard(id, card) {
    const existing = document.getElementById(`wo-${id}`);
    const from = existing ? existing.dataset.state : null;
    if (existing) existing.remove();
    if (card !== null) {
      const column = columns.querySelector(`[data-column="${card.dataset.state}"] [data-cards]`);
      if (column === null) return;
      const next = Array.from(column.children).find((other) => before(card, other));
      column.insertBefore(card, next || null);
      if (from !== card.dataset.state) {
        card.classList.add("arrived");
        card.addEventListener("animationend", () => card.classList.remove("arrived"), { once: true });
        if (from !== null) state.moves += 1;
      }
      state.seen[id] = { state: card.dataset.state, at: Date.now() };
    } else {
      state.seen[id] = { state: null, at: Date.now() };
    }
    tickSla();
    counts();
  }

  async function refreshCard(id) {
    const query = new URLSearchParams(config.filters).toString();
    const url = config.card.replace("{id}", encodeURIComponent(id)) + (query ? `?${query}` : "");
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.status === 401) {
      window.location.assign(`/console/login?next=${encodeURIComponent(window.location.pathname)}`);
      return;
    }
    if (response.status === 204) putCard(id, null);
    else if (response.ok) putCard(id, fromHtml(await response.text()));
  }

  // --- the order page -------------------------------------------------------------------------

  const panel = document.getElementById("wo-panel");

  async function refreshPanel() {
    const response = await fetch(config.panel, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (response.status === 401) {
      window.location.assign(`/console/login?next=${encodeURIComponent(window.location.pathname)}`);
      return;
    }
    if (!response.ok) return;
    panel.innerHTML = await response.text();
    state.seen[config.id] = { state: currentOrder().state, at: Date.now() };
    tickSla();
  }

  function currentOrder() {
    const summary = panel.querySelector(".wo-summary");
    return { state: summary.dataset.state, version: Number(summary.dataset.version) };
  }

  /** The message of a problem document (409 adds the allowed actions). */
  async function problemText(response) {
    let doc = {};
    try {
      doc = await response.json();
    } catch (error) {
      doc = {};
    }
    if (response.status === 403) return doc.detail || text("error.forbidden");
    let message = doc.detail || doc.title || text("error.failed");
    if (Array.isArray(doc.detail)) message = doc.detail.map((d) => d.msg).join("; ");
    if (response.status === 409 && Array.isArray(doc.allowed_actions)) {
      const names = doc.allowed_actions.map((a) => text(`orders.action.${a}`)).join(", ");
      message = `${message} — ${text("orders.js.allowed")}: ${names || "—"}`;
    }
    if (response.status === 412) message = `${message} — ${text("orders.js.moved")}`;
    return message;
  }

  async function act(action, fields) {
    const payload = { action, expected_version: currentOrder().version, ...fields };
    const response = await fetch(config.actions, {
      method: "POST",
      credentials: "same-origin",
      headers: { ...csrfHeaders, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload),
    });
    if (response.ok) {
      await refreshPanel();
      return null;
    }
    const message = await problemText(response);
    if (response.status === 412 || response.status === 409) refreshPanel().catch(() => {});
    return message;
  }

  const dialog = document.getElementById("wo-dialog");
  let acting = null;

  async function dispatchChoices() {
    const select = (id) => document.getElementById(id);
    const get = async (url) => {
      const response = await fetch(url, { credentials: "same-origin" });
      return response.ok ? (await response.json()).items : [];
    };
    const [teams, technicians, loans] = await Promise.all([
      get(config.teams),
      get(config.technicians),
      get(config.pool),
    ]);
    const fill = (group, options) => {
      group.replaceChildren(
        ...options.map(([value, label]) => {
          const option = document.createElement("option");
          option.value = value;
          option.textContent = label;
          return option;
        }),
      );
      group.hidden = options.length === 0;
    };
    fill(
      select("wo-teams"),
      teams.filter((team) => team.active).map((team) => [`team:${team.id}`, `${team.name} · ${team.area || "—"}`]),
    );
    fill(
      select("wo-techs"),
      technicians
        .filter((tech) => tech.active)
        .map((tech) => [`tech:${tech.name}`, `${tech.name} · ${text("orders.js.load")} ${tech.open_load}`]),
    );
    const borrowed = loans.filter(
      (loan) =>
        loan.kind === "technician" &&
        loan.borrower === config.company &&
        (loan.order_id === null || loan.order_id === config.id),
    );
    fill(
      select("wo-borrowed"),
      borrowed.map((loan) => [`tech:${loan.technician}`, `${loan.technician} · ${loan.lender}`]),
    );
  }

  function openDialog(action) {
    const fields = config.forms[action] || [];
    acting = { action, fields };
    document.getElementById("wo-dialog-title").textContent = text(`orders.action.${action}`);
    for (const field of dialog.querySelectorAll("[data-field]")) {
      field.hidden = !fields.includes(field.dataset.field);
    }
    for (const input of dialog.querySelectorAll("textarea")) input.value = "";
    document.getElementById("wo-error").hidden = true;
    if (fields.includes("target")) dispatchChoices().catch(() => {});
    dialog.showModal();
    const first = dialog.querySelector("[data-field]:not([hidden]) textarea, [data-field]:not([hidden]) select");
    if (first) first.focus();
  }

  function formFields(fields) {
    const values = {};
    for (const name of fields) {
      const input = document.getElementById(`wo-${name}`);
      if (name === "target") {
        const [kind, value] = input.value.split(/:(.*)/s);
        if (kind === "team") values.team = Number(value);
        if (kind === "tech") values.assignee = value;
      } else if (name === "rating") {
        values.rating = Number(input.value);
      } else if (input.value.trim() !== "") {
        values[name] = input.value;
      }
    }
    return values;
  }

  function setupOrderPage() {
    const actionError = () => document.getElementById("wo-action-error");
    panel.addEventListener("click", async (event) => {
      const button = event.target.closest("[data-action]");
      if (!button || button.tagName !== "BUTTON") return;
      const action = button.dataset.action;
      if ((config.forms[action] || []).length > 0) {
        openDialog(action);
        return;
      }
      button.disabled = true;
      const message = await act(action, {});
      if (message !== null) {
        const box = actionError();
        box.textContent = message;
        box.hidden = false;
        button.disabled = false;
      }
    });
    document.getElementById("wo-cancel").addEventListener("click", () => dialog.close());
    document.getElementById("wo-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if (acting === null) return;
      const submit = document.getElementById("wo-submit");
      submit.disabled = true;
      const message = await act(acting.action, formFields(acting.fields));
      submit.disabled = false;
      if (message === null) {
        dialog.close();
        acting = null;
        return;
      }
      const box = document.getElementById("wo-error");
      box.textContent = message;
      box.hidden = false;
    });
  }

  // --- telemetry around the alarm -------------------------------------------------------------

  const chartColors = ["#4da3ff", "#ffb84d", "#3ddc97"];

  async function drawTelemetry() {
    const target = config.telemetry;
    const holder = document.getElementById("wo-charts");
    if (!target || !holder || !window.echarts) return;
    state.charts = [];
    const boxes = target.metrics.map((metric) => {
      const box = document.createElement("div");
      box.className = "wo-chart";
      box.dataset.metric = metric;
      holder.appendChild(box);
      return box;
    });
    const locale = config.lang === "zh" ? "zh-CN" : "en-GB";
    const hhmm = (value) =>
      new Date(value).toLocaleTimeString(locale, { timeZone: config.timeZone, hour: "2-digit", minute: "2-digit" });
    for (const [index, metric] of target.metrics.entries()) {
      const query = new URLSearchParams({
        device: target.device,
        metric,
        from: target.from,
        to: target.to,
      });
      const response = await fetch(`${config.telemetryUrl}?${query}`, { credentials: "same-origin" });
      if (!response.ok) {
        boxes[index].remove();
        continue;
      }
      const series = await response.json();
      const chart = window.echarts.init(boxes[index], null, { renderer: "svg" });
      const name = `${text(`orders.metric.${metric}`)}${series.unit ? ` (${series.unit})` : ""}`;
      chart.setOption({
        backgroundColor: "transparent",
        animation: false,
        title: { text: `${target.device} · ${name}`, textStyle: { color: "#e8eef8", fontSize: 16 } },
        grid: { left: 56, right: 24, top: 44, bottom: 32 },
        tooltip: { trigger: "axis" },
        xAxis: { type: "time", min: target.from, max: target.to, axisLabel: { color: "#a3b2c9", formatter: hhmm, hideOverlap: true }, axisLine: { lineStyle: { color: "#26344f" } } },
        yAxis: { type: "value", scale: true, axisLabel: { color: "#a3b2c9" }, splitLine: { lineStyle: { color: "#26344f" } } },
        series: [
          {
            name,
            type: "line",
            showSymbol: false,
            lineStyle: { width: 2, color: chartColors[index % chartColors.length] },
            itemStyle: { color: chartColors[index % chartColors.length] },
            data: series.points.map((p) => [p.t, p.avg]),
            markLine: {
              symbol: "none",
              label: { formatter: text("orders.js.alarm_at"), color: "#ffb3b3" },
              lineStyle: { color: "#ff5d5d", type: "dashed", width: 2 },
              data: [{ xAxis: target.at }],
            },
          },
        ],
      });
      state.charts.push({ metric, points: series.points.length });
    }
    for (const box of holder.querySelectorAll(".wo-chart")) window.echarts.getInstanceByDom(box).resize();
    state.charted = true;
    window.addEventListener("resize", () => {
      for (const box of holder.querySelectorAll(".wo-chart")) window.echarts.getInstanceByDom(box).resize();
    state.charted = true;
    });
  }

  // --- the stream -----------------------------------------------------------------------------

  function schedule(id, job) {
    const running = state.pending.get(id);
    if (running) {
      running.again = true;
      return;
    }
    const entry = { again: false };
    state.pending.set(id, entry);
    (async () => {
      do {
        entry.again = false;
        try {
          await job();
        } catch (error) {
          entry.again = false; // the next event of this order fetches it again
        }
      } while (entry.again);
      state.pending.delete(id);
    })();
  }

  const status = document.getElementById("stream-status");

  function setStatus(live) {
    status.dataset.state = live ? "live" : "reconnecting";
    status.querySelector(".label").textContent = text(live ? "stream.live" : "stream.reconnecting");
  }

  function onWorkOrder(event) {
    if (event.lastEventId) state.lastId = event.lastEventId;
    const payload = JSON.parse(event.data);
    const id = String(payload.data && payload.data.id);
    if (columns) schedule(id, () => refreshCard(id));
    else if (panel && id === String(config.id)) schedule(id, refreshPanel);
  }

  function connect() {
    clearTimeout(state.retry);
    let url = config.stream;
    if (state.lastId !== null) url += `?last_event_id=${encodeURIComponent(state.lastId)}`;
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener("open", () => setStatus(true));
    source.addEventListener("work_order", onWorkOrder);
    source.addEventListener("error", () => {
      setStatus(false);
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        state.retry = setTimeout(connect, RETRY_MS);
      }
    });
  }

  // --- start ----------------------------------------------------------------------------------

  const clock = document.getElementById("clock");
  const tickClock = () => {
    clock.textContent = new Date().toLocaleTimeString(config.lang === "zh" ? "zh-CN" : "en-GB", {
      timeZone: config.timeZone,
    });
  };
  if (clock && config.timeZone) {
    tickClock();
    setInterval(tickClock, 1000);
  }
  tickSla();
  setInterval(tickSla, 1000);
  if (panel) setupOrderPage();
  if (panel) drawTelemetry().catch(() => {});
  if ((columns || panel) && status) connect();
})();
