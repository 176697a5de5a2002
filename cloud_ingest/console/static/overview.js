// One screen over the whole area: keeps the figures and the compound plan of the page live.
// The stream (GET /api/v1/stream, signed in by the session cookie) reports alarms, work orders
// and gateways; each report within this node asks for the figures again, at most once every
// `refreshMs`: the server renders them as the page does (overview_figures.html) and they replace
// the old ones in place. A compound's plan comes from GET /api/v1/plans/{path}.svg: it is parsed
// as SVG, stripped of anything but shapes, text and their geometry, and inlined so a device
// marker opens the device's page and a building opens its own overview.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("overview-config").textContent);
  const texts = JSON.parse(document.getElementById("overview-texts").textContent);
  const figures = document.getElementById("figures");
  const planBox = document.getElementById("plan");
  const RETRY_MS = 3000;
  const MARKER_SCALE = 1.8;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ELEMENTS = new Set([
    "svg", "g", "title", "desc", "rect", "circle", "ellipse", "line", "polyline", "polygon",
    "path", "text", "tspan",
  ]);
  const ATTRIBUTES = new Set([
    "viewBox", "preserveAspectRatio", "role", "class", "tabindex", "aria-label", "x", "y",
    "width", "height", "cx", "cy", "r", "rx", "ry", "x1", "y1", "x2", "y2", "points", "d",
    "fill", "stroke", "stroke-width", "stroke-dasharray", "text-anchor", "font-size",
    "font-family", "font-weight", "paint-order", "opacity",
  ]);

  const state = { refreshes: 0, plans: 0, last: 0, timer: null, running: false, again: false, source: null };
  window.stewardOverview = state;

  const text = (key) => texts[key] || key;

  // --- the figures ----------------------------------------------------------------------------

  async function refresh() {
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    state.last = Date.now();
    try {
      const response = await fetch(config.figures, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.status === 401) {
        window.location.assign(`/console/login?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      if (response.ok) {
        const template = document.createElement("template");
        template.innerHTML = await response.text();
        figures.replaceChildren(template.content);
        state.refreshes += 1;
      }
      if (config.plan) await loadPlan();
    } catch (error) {
      state.again = true; // retried by the next report or the timer below
    } finally {
      state.running = false;
    }
    if (state.again) {
      state.again = false;
      schedule();
    }
  }

  function schedule() {
    if (state.timer !== null) return;
    const wait = Math.max(0, state.last + config.refreshMs - Date.now());
    state.timer = setTimeout(() => {
      state.timer = null;
      refresh();
    }, wait);
  }

  function concerns(location) {
    if (!config.site || !location) return true;
    return location === config.site || location.startsWith(`${config.site}/`) ||
      config.site.startsWith(`${location}/`);
  }

  function onEvent(event) {
    let payload = {};
    try {
      payload = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (concerns(payload.location || "")) schedule();
  }

  // --- the plan -------------------------------------------------------------------------------

  function clean(node) {
    for (const child of Array.from(node.children)) {
      if (child.namespaceURI !== SVG_NS || !ELEMENTS.has(child.localName)) {
        child.remove();
        continue;
      }
      for (const attr of Array.from(child.attributes)) {
        const name = attr.name;
        const kept = ATTRIBUTES.has(name) || (name.startsWith("data-") && !name.includes(":"));
        if (!kept || /^\s*(javascript|data):/i.test(attr.value)) child.removeAttribute(name);
      }
      clean(child);
    }
  }

  function sanitised(source) {
    const parsed = new DOMParser().parseFromString(source, "image/svg+xml");
    const root = parsed.documentElement;
    if (root.namespaceURI !== SVG_NS || root.localName !== "svg") return null;
    const wrapper = parsed.createElementNS(SVG_NS, "g");
    wrapper.appendChild(root);
    clean(wrapper);
    return wrapper.firstElementChild ? document.importNode(wrapper.firstElementChild, true) : null;
  }

  function planFailed() {
    planBox.dataset.state = "failed";
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = text("overview.js.plan_failed");
    planBox.replaceChildren(note);
    setTimeout(schedule, RETRY_MS);
  }

  async function loadPlan() {
    const response = await fetch(config.plan, {
      credentials: "same-origin",
      headers: { Accept: "image/svg+xml" },
    });
    if (!response.ok) {
      planFailed();
      return;
    }
    const svg = sanitised(await response.text());
    if (svg === null) {
      planFailed();
      return;
    }
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    planBox.replaceChildren(svg);
    for (const marker of svg.querySelectorAll("g.device")) {
      enlarge(marker);
      marker.setAttribute("role", "link");
      const label = marker.getAttribute("aria-label") || marker.dataset.deviceId;
      marker.setAttribute("aria-label", `${text("overview.js.open_device")}: ${label}`);
    }
    for (const site of svg.querySelectorAll("g.site")) {
      site.setAttribute("role", "link");
      site.setAttribute("tabindex", "0");
    }
    planBox.dataset.state = "ready";
    state.plans += 1;
  }

  // A marker drawn for a desk is small on a wall screen: grown around its own centre.
  function enlarge(marker) {
    const box = marker.getBBox();
    const x = box.x + box.width / 2;
    const y = box.y + box.height / 2;
    marker.setAttribute("transform", `translate(${x} ${y}) scale(${MARKER_SCALE}) translate(${-x} ${-y})`);
  }

  function target(event) {
    const marker = event.target.closest("g.device");
    if (marker && marker.dataset.deviceId) {
      return `${config.device}/${encodeURIComponent(marker.dataset.deviceId)}`;
    }
    const site = event.target.closest("g.site");
    if (site && site.dataset.sitePath) {
      return `${config.page}?site=${encodeURIComponent(site.dataset.sitePath).replace(/%2F/g, "/")}`;
    }
    return null;
  }

  if (planBox) {
    planBox.addEventListener("click", (event) => {
      const href = target(event);
      if (href) window.location.assign(href);
    });
    planBox.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      const href = target(event);
      if (href) {
        event.preventDefault();
        window.location.assign(href);
      }
    });
  }

  // --- the stream -----------------------------------------------------------------------------

  const status = document.getElementById("stream-status");

  function setStatus(live) {
    status.dataset.state = live ? "live" : "reconnecting";
    status.querySelector(".label").textContent = text(live ? "stream.live" : "stream.reconnecting");
  }

  function connect() {
    const source = new EventSource(config.stream);
    state.source = source;
    let opened = false;
    source.addEventListener("open", () => {
      setStatus(true);
      if (opened) schedule(); // back after a drop: what changed meanwhile
      opened = true;
    });
    for (const kind of ["alarm", "work_order", "gateway"]) source.addEventListener(kind, onEvent);
    source.addEventListener("error", () => {
      setStatus(false);
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, RETRY_MS);
        schedule(); // a sign-in that ended sends the page to the sign-in form
      }
    });
  }

  // --- start ----------------------------------------------------------------------------------

  const clock = document.getElementById("clock");
  const tick = () => {
    clock.textContent = new Date().toLocaleTimeString(config.lang === "zh" ? "zh-CN" : "en-GB", {
      timeZone: config.timeZone,
    });
  };
  tick();
  setInterval(tick, 1000);
  if (config.plan) loadPlan().catch(planFailed);
  connect();
})();
