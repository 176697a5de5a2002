// The device page's charts: each chart metric over the chosen range from GET /api/v1/telemetry
// (bucket means, the API's default step), and the device's forecasts from
// GET /api/v1/devices/{id}/forecast drawn as a dashed line from the trend's level now to its
// target (a bin full at 100 %, a battery spent), with the time said in words. A chart whose
// metrics have no readings in the range is left out (and the page says so when all are). Times
// are shown in the work orders' time zone and the page's language; the range buttons redraw
// without a reload.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("device-config").textContent);
  const texts = JSON.parse(document.getElementById("device-texts").textContent);
  const zh = config.lang === "zh";
  const locale = zh ? "zh-CN" : "en-GB";
  const HOUR_MS = 3600 * 1000;
  const DAY_MS = 24 * HOUR_MS;
  const THEME = {
    text: "#e8eef8",
    muted: "#a3b2c9",
    line: "#26344f",
    panel: "#18233a",
    forecast: "#f5f8ff",
    target: "#ff5d5d",
  };
  const COLORS = {
    fill_pct: "#3ddc97",
    battery_pct: "#ffb84d",
    battery_v: "#ffb84d",
    tilt_deg: "#c792ff",
    temperature_c: "#ff8a7a",
    distance_mm: "#4da3ff",
  };
  const FORECAST_OF = { fill_pct: "fill", battery_pct: "battery", battery_v: "battery" };

  const state = { range: config.range, loads: 0, ready: false, points: {}, shown: {}, forecast: null };
  window.stewardDevice = state;
  const charts = new Map();

  const text = (key, values) => {
    let found = texts[key] || key;
    for (const [name, value] of Object.entries(values || {})) {
      found = found.split(`{${name}}`).join(String(value));
    }
    return found;
  };

  // --- times and words ------------------------------------------------------------------------

  const zone = { timeZone: config.timeZone, hour12: false };
  const hourMinute = new Intl.DateTimeFormat(locale, { ...zone, hour: "2-digit", minute: "2-digit" });
  const monthDay = new Intl.DateTimeFormat(locale, { ...zone, month: "2-digit", day: "2-digit" });
  const stamp = new Intl.DateTimeFormat(locale, {
    ...zone,
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
  const relative = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });

  function axisLabel(value) {
    const span = config.ranges[state.range] * 1000;
    const when = new Date(value);
    if (span > 2 * DAY_MS) {
      const time = hourMinute.format(when);
      return time === "00:00" ? monthDay.format(when) : `${monthDay.format(when)}\n${time}`;
    }
    return hourMinute.format(when);
  }

  /** A duration in words: minutes under an hour, hours (and minutes) under two days, else days. */
  function duration(ms) {
    const minutes = Math.max(1, Math.round(ms / 60000));
    if (minutes < 60) return text("device.forecast.minutes", { n: minutes });
    const hours = Math.floor(minutes / 60);
    if (hours < 48) {
      const rest = minutes - hours * 60;
      if (hours >= 10 || rest === 0) return text("device.forecast.hours", { n: Math.round(minutes / 60) });
      return text("device.forecast.hours_minutes", { h: hours, m: rest });
    }
    return text("device.forecast.days", { n: Math.round(ms / DAY_MS) });
  }

  function age(ms) {
    const seconds = Math.round((ms - Date.now()) / 1000);
    if (Math.abs(seconds) < 60) return relative.format(seconds, "second");
    if (Math.abs(seconds) < 3600) return relative.format(Math.round(seconds / 60), "minute");
    if (Math.abs(seconds) < 86400) return relative.format(Math.round(seconds / 3600), "hour");
    return relative.format(Math.round(seconds / 86400), "day");
  }

  function showAge() {
    const cell = document.getElementById("last-seen-age");
    if (cell) cell.textContent = age(Number(cell.dataset.since));
  }

  // --- data -----------------------------------------------------------------------------------

  async function getJson(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }

  async function series(metrics, from, to) {
    for (const metric of metrics) {
      const query = new URLSearchParams({
        device: config.device,
        metric,
        from: from.toISOString(),
        to: to.toISOString(),
      });
      const found = await getJson(`${config.telemetry}?${query}`);
      if (found.points.length > 0) return found;
    }
    return null;
  }

  // --- forecast -------------------------------------------------------------------------------

  function forecastWords(kind, forecast, at) {
    if (forecast === null) return text(`device.forecast.${kind}.none`);
    if (forecast.status === "ok" && forecast.eta) {
      const eta = Date.parse(forecast.eta);
      const words = text(`device.forecast.${kind}.ok`, {
        in: duration(eta - at),
        at: stamp.format(new Date(eta)),
      });
      return `${words} · ${text(`device.forecast.confidence.${forecast.confidence}`)}`;
    }
    return text(`device.forecast.${kind}.${forecast.status}`);
  }

  function showForecast(kind, forecast, at) {
    const line = document.getElementById(`forecast-${kind}`);
    if (!line) return;
    line.textContent = forecastWords(kind, forecast, at);
    line.dataset.status = forecast === null ? "none" : forecast.status;
  }

  /** The dashed line from the level now to the target, cut at `end` (the chart's right edge). */
  function forecastLine(forecast, at, end) {
    if (!forecast || forecast.status !== "ok" || !forecast.eta || forecast.level === null) {
      return null;
    }
    const eta = Date.parse(forecast.eta);
    const stop = Math.min(eta, end);
    const share = eta > at ? (stop - at) / (eta - at) : 1;
    const value = forecast.level + (forecast.target - forecast.level) * share;
    return [
      [at, round(forecast.level)],
      [stop, round(value)],
    ];
  }

  // --- charts ---------------------------------------------------------------------------------

  const round = (value) => Math.round(value * 100) / 100;

  function chartFor(metric) {
    let chart = charts.get(metric);
    if (!chart) {
      const element = document.getElementById(`chart-${metric}`);
      chart = echarts.init(element, null, { renderer: "canvas", locale: zh ? "ZH" : "EN" });
      charts.set(metric, chart);
    }
    return chart;
  }

  function option(card, found, forecast, at, from, to) {
    const metric = found.metric;
    const color = COLORS[metric] || "#4da3ff";
    const unit = found.unit;
    const percent = unit === "%";
    const halfStep = (found.step_s * 1000) / 2;
    const data = found.points.map((p) => [Date.parse(p.t) + halfStep, round(p.avg)]);
    const span = to - from;
    const ahead = forecast && forecast.status === "ok" && forecast.eta
      ? Math.min(Date.parse(forecast.eta), at + span) : to;
    const dashed = forecastLine(forecast, at, ahead);
    const name = text(`device.metric.${card}`);
    const seriesList = [
      {
        name,
        type: "line",
        data,
        showSymbol: data.length <= 48,
        symbolSize: 7,
        smooth: false,
        lineStyle: { width: 3, color },
        itemStyle: { color },
        areaStyle: {
          color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [
            { offset: 0, color: `${color}55` },
            { offset: 1, color: `${color}05` },
          ]),
        },
      },
    ];
    if (dashed) {
      seriesList.push({
        name: text("device.forecast.series"),
        type: "line",
        data: dashed,
        showSymbol: true,
        symbol: "circle",
        symbolSize: 9,
        lineStyle: { width: 3, type: "dashed", color: THEME.forecast },
        itemStyle: { color: THEME.forecast },
        markLine: {
          silent: true,
          symbol: "none",
          label: {
            color: THEME.target,
            fontSize: 14,
            position: "insideMiddleTop",
            formatter: text("device.forecast.target"),
          },
          lineStyle: { color: THEME.target, type: "dotted", width: 2 },
          data: [{ yAxis: forecast.target }],
        },
        z: 3,
      });
    }
    return {
      backgroundColor: "transparent",
      animationDuration: 400,
      textStyle: { color: THEME.text, fontFamily: getComputedStyle(document.body).fontFamily },
      grid: { left: 64, right: 28, top: 40, bottom: span > 2 * DAY_MS ? 52 : 36 },
      legend: dashed ? {
        right: 8,
        top: 0,
        textStyle: { color: THEME.muted, fontSize: 14 },
        itemWidth: 22,
      } : { show: false },
      tooltip: {
        trigger: "axis",
        backgroundColor: THEME.panel,
        borderColor: THEME.line,
        textStyle: { color: THEME.text, fontSize: 15 },
        axisPointer: { lineStyle: { color: THEME.muted } },
        valueFormatter: (value) => (value === null || value === undefined ? "—" : `${value} ${unit}`),
      },
      xAxis: {
        type: "time",
        min: from,
        max: Math.max(to, ahead),
        axisLine: { lineStyle: { color: THEME.line } },
        axisTick: { lineStyle: { color: THEME.line } },
        axisLabel: { color: THEME.muted, fontSize: 14, hideOverlap: true, formatter: axisLabel },
        splitLine: { show: false },
      },
      yAxis: {
        type: "value",
        name: `${text(`device.metric.short.${metric}`)} (${unit})`,
        nameTextStyle: { color: THEME.muted, fontSize: 14, align: "left" },
        min: percent ? 0 : undefined,
        max: percent ? 100 : undefined,
        scale: !percent,
        axisLabel: { color: THEME.muted, fontSize: 14 },
        splitLine: { lineStyle: { color: THEME.line } },
      },
      series: seriesList,
    };
  }

  function draw(card, found, forecast, at, from, to) {
    const article = document.getElementById(`card-${card}`);
    const now = article.querySelector("[data-now]");
    state.points[card] = found ? found.points.length : 0;
    state.shown[card] = found !== null;
    article.hidden = found === null;
    if (!found) return;
    const last = found.points[found.points.length - 1];
    now.textContent = `${round(last.avg)} ${found.unit}`;
    const chart = chartFor(card);
    chart.setOption(option(card, found, forecast, at, from.getTime(), to.getTime()), true);
    chart.resize();
  }

  async function load() {
    const token = ++state.loads;
    state.ready = false;
    const to = new Date();
    const from = new Date(to.getTime() - config.ranges[state.range] * 1000);
    const error = document.getElementById("chart-error");
    try {
      const [forecast, ...found] = await Promise.all([
        getJson(config.forecast),
        ...config.charts.map((metrics) => series(metrics, from, to)),
      ]);
      if (token !== state.loads) return;
      state.forecast = forecast;
      const at = Date.parse(forecast.at);
      showForecast("fill", forecast.fill, at);
      showForecast("battery", forecast.battery, at);
      config.charts.forEach((metrics, n) => {
        const kind = FORECAST_OF[metrics[0]];
        draw(metrics[0], found[n], kind ? forecast[kind] : null, at, from, to);
      });
      document.getElementById("charts-empty").hidden = Object.values(state.shown).some(Boolean);
      error.hidden = true;
    } catch (err) {
      if (token !== state.loads) return;
      error.hidden = false;
      error.textContent = `${text("device.js.failed")} (${err.message})`;
    }
    state.ready = true;
  }

  // --- range ----------------------------------------------------------------------------------

  for (const link of document.querySelectorAll("[data-range]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      state.range = link.dataset.range;
      for (const other of document.querySelectorAll("[data-range]")) {
        const chosen = other === link;
        other.classList.toggle("chosen", chosen);
        if (chosen) other.setAttribute("aria-current", "true");
        else other.removeAttribute("aria-current");
      }
      const url = new URL(window.location.href);
      url.searchParams.set("range", state.range);
      window.history.replaceState(null, "", url);
      load();
    });
  }

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => charts.forEach((chart) => chart.resize()), 100);
  });

  const clock = document.getElementById("clock");
  const timeOfDay = new Intl.DateTimeFormat(locale, { ...zone, hour: "2-digit", minute: "2-digit", second: "2-digit" });
  function tick() {
    if (clock) clock.textContent = timeOfDay.format(new Date());
    showAge();
  }
  tick();
  setInterval(tick, 1000);
  load();
  setInterval(() => {
    if (!document.hidden) load();
  }, 60000);
})();
