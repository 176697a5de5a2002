// The live-alarms page: follows GET /api/v1/stream with EventSource (the session cookie signs
// it in), fetches each changed row as server-rendered HTML and keeps the table in page order
// (fire first, then severity, then newest). The stream resumes after the last event id it saw:
// the browser sends Last-Event-ID when it reconnects by itself, and when it gives up (a refused
// reconnection) a new EventSource starts from ?last_event_id=, so nothing is missed across a
// network drop or a server restart. A new critical alarm shows a banner and sounds a tone
// unless the operator muted it for this sign-in (sessionStorage).
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("console-config").textContent);
  const texts = JSON.parse(document.getElementById("console-texts").textContent);
  const tbody = document.getElementById("alarm-rows");
  const MUTE_KEY = "steward.console.muted";
  const RETRY_MS = 1500;

  const state = {
    lastId: config.resume === null ? null : String(config.resume),
    source: null,
    retry: null,
    connects: 0,
    known: new Set(),
    seen: {},
    heard: {},
    alerts: 0,
    beeps: 0,
    audio: null,
    pending: new Map(),
  };
  window.stewardConsole = state;
  for (const tr of tbody.rows) state.known.add(tr.dataset.fingerprint);

  const text = (key, n) => (texts[key] || key).replace("{n}", String(n));

  // --- order and counts -----------------------------------------------------------------------

  const key = (tr) => [Number(tr.dataset.fire), Number(tr.dataset.rank), Number(tr.dataset.since)];

  function before(a, b) {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i += 1) {
      if (ka[i] !== kb[i]) return ka[i] > kb[i];
    }
    return a.dataset.fingerprint < b.dataset.fingerprint;
  }

  function place(tr) {
    for (const other of tbody.rows) {
      if (other !== tr && before(tr, other)) {
        tbody.insertBefore(tr, other);
        return;
      }
    }
    tbody.appendChild(tr);
  }

  function rowOf(fingerprint) {
    for (const tr of tbody.rows) {
      if (tr.dataset.fingerprint === fingerprint) return tr;
    }
    return null;
  }

  function updateCounts() {
    const rows = Array.from(tbody.rows);
    const count = (test) => String(rows.filter(test).length);
    document.getElementById("count-total").textContent = String(rows.length);
    document.getElementById("count-fire").textContent = count((r) => r.dataset.fire === "1");
    document.getElementById("count-critical").textContent = count(
      (r) => r.dataset.severity === "critical",
    );
    document.getElementById("count-unacked").textContent = count((r) => r.dataset.unacked === "1");
    document.getElementById("empty").hidden = rows.length > 0;
  }

  function updateAges() {
    const now = Date.now();
    for (const tr of tbody.rows) {
      const cell = tr.querySelector("[data-age]");
      if (!cell) continue;
      const minutes = Math.floor((now - Number(tr.dataset.since)) / 60000);
      let shown = text("age.now");
      if (minutes >= 1440) shown = text("age.day", Math.floor(minutes / 1440));
      else if (minutes >= 60) shown = text("age.hour", Math.floor(minutes / 60));
      else if (minutes >= 1) shown = text("age.min", minutes);
      cell.textContent = shown;
    }
  }

  // --- alert and sound ------------------------------------------------------------------------

  const soundButton = document.getElementById("sound");
  const alertBox = document.getElementById("alert");
  const muted = () => sessionStorage.getItem(MUTE_KEY) === "1";

  function showSound() {
    soundButton.textContent = muted() ? text("sound.off") : text("sound.on");
    soundButton.setAttribute("aria-pressed", muted() ? "false" : "true");
    soundButton.classList.toggle("muted-sound", muted());
  }

  function audio() {
    if (state.audio === null && window.AudioContext) state.audio = new AudioContext();
    if (state.audio !== null && state.audio.state === "suspended") state.audio.resume();
    return state.audio;
  }

  function beep() {
    const ctx = audio();
    if (ctx === null) return;
    const start = ctx.currentTime + 0.02;
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0.0001, start);
    gain.connect(ctx.destination);
    for (let i = 0; i < 3; i += 1) {
      const tone = ctx.createOscillator();
      const at = start + i * 0.4;
      tone.type = "square";
      tone.frequency.setValueAtTime(i % 2 ? 660 : 880, at);
      gain.gain.setValueAtTime(0.2, at);
      gain.gain.setValueAtTime(0.0001, at + 0.3);
      tone.connect(gain);
      tone.start(at);
      tone.stop(at + 0.3);
    }
    state.beeps += 1;
  }

  function alertNew(tr) {
    state.alerts += 1;
    const what = tr.querySelector(".desc").textContent;
    document.getElementById("alert-text").textContent = `${what} · ${tr.dataset.location}`;
    alertBox.hidden = false;
    document.body.classList.add("alerting");
    if (!muted()) beep();
  }

  soundButton.addEventListener("click", () => {
    sessionStorage.setItem(MUTE_KEY, muted() ? "0" : "1");
    showSound();
    if (!muted()) audio();
  });
  document.getElementById("alert-dismiss").addEventListener("click", () => {
    alertBox.hidden = true;
    document.body.classList.remove("alerting");
  });
  document.addEventListener("click", () => {
    if (!muted()) audio();
  }, { once: true });

  // --- rows -----------------------------------------------------------------------------------

  function fromHtml(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function put(fingerprint, tr) {
    const existing = rowOf(fingerprint);
    if (tr === null) {
      if (existing !== null) existing.remove();
      state.known.delete(fingerprint);
    } else {
      if (existing !== null) existing.remove();
      place(tr);
      if (existing === null) {
        state.seen[fingerprint] = Date.now();
        tr.classList.add("new");
        tr.addEventListener("animationend", () => tr.classList.remove("new"), { once: true });
        if (!state.known.has(fingerprint) && tr.dataset.severity === "critical") alertNew(tr);
      }
      state.known.add(fingerprint);
      if (window.htmx) window.htmx.process(tr);
    }
    updateAges();
    updateCounts();
  }

  async function refresh(fingerprint) {
    const url = `${config.row}?fingerprint=${encodeURIComponent(fingerprint)}`;
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.status === 401) {
      window.location.assign("/console/login?next=/console/alarms");
      return;
    }
    if (response.status === 204) put(fingerprint, null);
    else if (response.ok) put(fingerprint, fromHtml(await response.text()));
  }

  function schedule(fingerprint) {
    const running = state.pending.get(fingerprint);
    if (running) {
      running.again = true;
      return;
    }
    const entry = { again: false };
    state.pending.set(fingerprint, entry);
    (async () => {
      do {
        entry.again = false;
        try {
          await refresh(fingerprint);
        } catch (error) {
          entry.again = false; // the next event of this alarm fetches it again
        }
      } while (entry.again);
      state.pending.delete(fingerprint);
    })();
  }

  // --- the stream -----------------------------------------------------------------------------

  const status = document.getElementById("stream-status");

  function setStatus(live) {
    status.dataset.state = live ? "live" : "reconnecting";
    status.querySelector(".label").textContent = text(live ? "stream.live" : "stream.reconnecting");
  }

  function onAlarm(event) {
    if (event.lastEventId) state.lastId = event.lastEventId;
    const payload = JSON.parse(event.data);
    if (!(payload.key in state.heard)) state.heard[payload.key] = Date.now();
    schedule(payload.key);
  }

  function onWorkOrder(event) {
    if (event.lastEventId) state.lastId = event.lastEventId;
    const payload = JSON.parse(event.data);
    const id = String(payload.data && payload.data.id);
    for (const tr of Array.from(tbody.rows)) {
      const orderless = tr.dataset.orderId === "" && tr.dataset.location === payload.location;
      if (tr.dataset.orderId === id || orderless) schedule(tr.dataset.fingerprint);
    }
  }

  function connect() {
    clearTimeout(state.retry);
    let url = config.stream;
    if (state.lastId !== null) url += `?last_event_id=${encodeURIComponent(state.lastId)}`;
    const source = new EventSource(url);
    state.source = source;
    state.connects += 1;
    source.addEventListener("open", () => setStatus(true));
    source.addEventListener("alarm", onAlarm);
    source.addEventListener("work_order", onWorkOrder);
    source.addEventListener("error", () => {
      setStatus(false);
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        state.retry = setTimeout(connect, RETRY_MS);
        refresh("-").catch(() => {}); // a sign-in that ended sends the page to the sign-in form
      }
    });
  }

  // --- acknowledge ----------------------------------------------------------------------------

  const dialog = document.getElementById("ack-dialog");
  const comment = document.getElementById("ack-comment");
  const ackError = document.getElementById("ack-error");
  let acking = null;

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("[data-ack]");
    if (!button) return;
    const tr = button.closest("tr");
    acking = { tr };
    document.getElementById("ack-what").textContent =
      `${tr.querySelector(".desc").textContent} · ${tr.dataset.location}`;
    comment.value = "";
    ackError.hidden = true;
    dialog.showModal();
    comment.focus();
  });
  document.getElementById("ack-cancel").addEventListener("click", () => dialog.close());

  document.getElementById("ack-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (acking === null) return;
    const fingerprint = acking.tr.dataset.fingerprint;
    const body = new URLSearchParams({ fingerprint, comment: comment.value });
    const response = await fetch(config.ack, {
      method: "POST",
      credentials: "same-origin",
      headers: { [config.csrfHeader]: config.csrf },
      body,
    });
    const type = response.headers.get("content-type") || "";
    if (response.ok) {
      put(fingerprint, response.status === 204 ? null : fromHtml(await response.text()));
      dialog.close();
      acking = null;
      return;
    }
    ackError.textContent = type.startsWith("text/plain")
      ? await response.text()
      : text(response.status === 403 ? "error.forbidden" : "error.failed");
    ackError.hidden = false;
  });

  // --- start ----------------------------------------------------------------------------------

  const clock = document.getElementById("clock");
  const tick = () => {
    clock.textContent = new Date().toLocaleTimeString(config.lang === "zh" ? "zh-CN" : "en-GB", {
      timeZone: config.timeZone,
    });
  };
  tick();
  setInterval(tick, 1000);
  setInterval(updateAges, 15000);
  showSound();
  updateAges();
  connect();
})();
