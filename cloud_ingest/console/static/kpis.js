// The KPI page's charts, from the report the page embeds (the JSON of GET /api/v1/kpis): the
// rates of each group (lines over three or more periods when grouped by period alone, bars
// otherwise), the mean times to accept and to close, and the orders opened and closed. Colours
// for the dark theme, texts in the page's language; the charts follow the window's size.
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("kpi-data").textContent);
  const texts = JSON.parse(document.getElementById("kpi-texts").textContent);
  const state = { ready: false, charts: {} };
  window.stewardKpis = state;
  if (!data) {
    state.ready = true;
    return;
  }
  const report = data.report;
  const zh = data.lang === "zh";
  const text = (key) => texts[key] || key;
  const THEME = { text: "#e8eef8", muted: "#a3b2c9", line: "#26344f", panel: "#18233a" };
  const PALETTE = [
    "#4da3ff", "#3ddc97", "#ffb84d", "#c792ff", "#ff8a7a", "#5fe0e6", "#f5d76e", "#ff6fae",
  ];
  const LINE_MIN = 3;
  const byPeriodOnly = report.by.length === 1 && report.by[0] === "period" && report.rows.length >= LINE_MIN;
  const labels = report.rows.map((row) => report.by.map((name) => row[name] || "—").join(" · ") || "—");
  const font = getComputedStyle(document.body).fontFamily;

  const axisText = { color: THEME.muted, fontSize: 14 };
  const base = () => ({
    backgroundColor: "transparent",
    animationDuration: 400,
    color: PALETTE,
    textStyle: { color: THEME.text, fontFamily: font },
    grid: { left: 64, right: 24, top: 56, bottom: 40, containLabel: true },
    legend: { top: 0, type: "scroll", textStyle: { color: THEME.text, fontSize: 15 },
      pageTextStyle: { color: THEME.muted }, pageIconColor: THEME.text, pageIconInactiveColor: THEME.line },
    tooltip: {
      trigger: "axis",
      backgroundColor: THEME.panel,
      borderColor: THEME.line,
      textStyle: { color: THEME.text, fontSize: 15 },
      axisPointer: { type: byPeriodOnly ? "line" : "shadow" },
    },
    xAxis: {
      type: "category",
      data: labels,
      axisLine: { lineStyle: { color: THEME.line } },
      axisLabel: { ...axisText, hideOverlap: true, interval: "auto" },
    },
  });
  const valueAxis = (name, extra) => ({
    type: "value",
    name,
    nameTextStyle: { ...axisText, align: "left" },
    axisLabel: axisText,
    splitLine: { lineStyle: { color: THEME.line } },
    ...extra,
  });
  const kind = byPeriodOnly ? "line" : "bar";
  const lineLook = byPeriodOnly ? { symbolSize: 7, lineStyle: { width: 3 }, connectNulls: false } : { barMaxWidth: 26 };

  function chart(id, option) {
    const element = document.getElementById(id);
    const made = echarts.init(element, null, { renderer: "canvas", locale: zh ? "ZH" : "EN" });
    made.setOption(option);
    state.charts[id] = option.series.map((s) => s.data.filter((v) => v !== null).length);
    return made;
  }

  const pct = (ratio) => (ratio.rate === null ? null : Math.round(ratio.rate * 1000) / 10);
  const rates = chart("chart-rates", {
    ...base(),
    tooltip: { ...base().tooltip, valueFormatter: (v) => (v === null || v === undefined ? "—" : `${v}%`) },
    yAxis: valueAxis(text("kpis.js.percent"), { min: 0, max: 100 }),
    series: data.rates.map((name) => ({
      name: text(`kpis.rate.${name}`),
      type: kind,
      data: report.rows.map((row) => pct(row[name])),
      ...lineLook,
    })),
  });

  const minutes = (seconds) => (seconds === null ? null : Math.round(seconds / 6) / 10);
  const times = chart("chart-times", {
    ...base(),
    tooltip: { ...base().tooltip, valueFormatter: (v) => (v === null || v === undefined ? "—" : `${v} ${text("kpis.js.minutes")}`) },
    yAxis: valueAxis(text("kpis.js.minutes")),
    series: [
      { name: text("kpis.js.mtta"), type: kind, data: report.rows.map((r) => minutes(r.mtta_s)), ...lineLook },
      { name: text("kpis.js.mttr"), type: kind, data: report.rows.map((r) => minutes(r.mttr_s)), ...lineLook },
    ],
  });

  const volume = chart("chart-volume", {
    ...base(),
    color: ["#4da3ff", "#3ddc97", "#a3b2c9"],
    yAxis: valueAxis(text("kpis.js.orders"), { minInterval: 1 }),
    series: [
      { name: text("kpis.js.opened"), type: "bar", data: report.rows.map((r) => r.opened), barMaxWidth: 26 },
      { name: text("kpis.js.closed"), type: "bar", data: report.rows.map((r) => r.closed), barMaxWidth: 26 },
      { name: text("kpis.js.cancelled"), type: "bar", data: report.rows.map((r) => r.cancelled), barMaxWidth: 26 },
    ],
  });

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => [rates, times, volume].forEach((c) => c.resize()), 100);
  });

  const clock = document.getElementById("clock");
  const timeOfDay = new Intl.DateTimeFormat(zh ? "zh-CN" : "en-GB", {
    timeZone: report.timezone, hour12: false, hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const tick = () => {
    if (clock) clock.textContent = timeOfDay.format(new Date());
  };
  tick();
  setInterval(tick, 1000);
  state.ready = true;
})();
