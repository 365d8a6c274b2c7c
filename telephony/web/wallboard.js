// The wallboard: WS /v1/events for queues, agents and calls; the reports API for today's
// service level and KPIs; Chart.js (vendored, /wallboard/chart.umd.min.js) for the charts.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const ZONE = "Asia/Shanghai";  // the reports' default zone: "today" is a date there
  const AGENT_STATES = ["available", "ringing", "in_call", "wrap_up", "busy", "logged_out"];
  const STATE_NAMES = {
    available: "空闲 available", ringing: "振铃 ringing", in_call: "通话 in call",
    wrap_up: "话后 wrap-up", busy: "置忙 busy", logged_out: "签出 logged out",
  };
  const STATE_COLOURS = {
    available: "#43a047", ringing: "#fdd835", in_call: "#1e88e5",
    wrap_up: "#8e24aa", busy: "#e53935", logged_out: "#607d8b",
  };
  const KPIS = [
    ["answer_rate_30s", "30秒接通率"],
    ["manual_connection_rate", "人工接通率"],
    ["call_loss_rate", "呼损率"],
    ["system_completion_rate", "系统接通率"],
    ["keypress_satisfaction", "按键满意率"],
    ["missed_callback_rate", "漏接回拨率"],
    ["follow_up_coverage", "回访覆盖率"],
    ["availability", "呼叫接入系统可用率"],
  ];
  const params = new URLSearchParams(location.search);
  const REFRESH_S = Math.max(5, Number(params.get("refresh")) || 30);
  const TREND_EVERY_S = 5;
  const TREND_POINTS = 120;

  const state = {
    token: sessionStorage.getItem("telephony.token") || "",
    seq: null, epoch: null, socket: null, retry: 0,
    skew: 0,             // the server's clock minus ours, from the API's Date header (ms)
    agents: new Map(),   // agent id -> agent view
    queues: new Map(),   // skill group id -> {waiting, oldest} (oldest: ms since epoch or null)
    calls: new Map(),    // call uuid -> live call view
    groups: new Map(),   // skill group id -> {name, service_level_seconds}
    levels: new Map(),   // skill group id -> today's statistics row values
    reportsTimer: null, soonTimer: null,
  };

  // -- helpers --------------------------------------------------------------------------------

  function today() {  // YYYY-MM-DD in ZONE
    return new Intl.DateTimeFormat("en-CA", { timeZone: ZONE }).format(new Date());
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
    const s = Math.max(0, Math.floor(seconds));
    const mm = String(Math.floor(s / 60)).padStart(2, "0");
    const ss = String(s % 60).padStart(2, "0");
    return s >= 3600 ? Math.floor(s / 3600) + ":" + String(Math.floor(s / 60) % 60).padStart(2, "0") + ":" + ss
      : mm + ":" + ss;
  }

  function percent(value) {
    return value === null || value === undefined ? "" : (100 * value).toFixed(1) + "%";
  }

  function cell(row, text, testId, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (testId) td.dataset.testid = testId;
    if (className) td.className = className;
    row.append(td);
    return td;
  }

  async function api(path) {
    const reply = await fetch(path, { headers: { "Authorization": "Bearer " + state.token } });
    const date = Date.parse(reply.headers.get("Date") || "");
    if (isFinite(date)) state.skew = date + 500 - Date.now();  // a whole second: +0.5 s
    let data = null;
    try { data = await reply.json(); } catch (e) { data = null; }
    if (!reply.ok) {
      const detail = data && (data.detail || data.error);
      throw new Error(path.split("?")[0] + " -> " + reply.status + (detail ? " " + detail : ""));
    }
    return data;
  }

  // -- charts ---------------------------------------------------------------------------------

  const charts = {};

  function makeCharts() {
    if (typeof Chart === "undefined") return;  // the page still shows its numbers
    Chart.defaults.color = "#cfd8e3";
    Chart.defaults.borderColor = "#2a3f58";
    Chart.defaults.animation = false;
    charts.queues = new Chart($("chart-queues"), {
      type: "bar",
      data: { labels: [], datasets: [{ label: "waiting 排队", data: [], backgroundColor: "#42a5f5" }] },
      options: {
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { display: false } },
      },
    });
    charts.agents = new Chart($("chart-agents"), {
      type: "doughnut",
      data: {
        labels: AGENT_STATES.map((s) => STATE_NAMES[s]),
        datasets: [{ data: AGENT_STATES.map(() => 0), backgroundColor: AGENT_STATES.map((s) => STATE_COLOURS[s]) }],
      },
      options: { maintainAspectRatio: false, plugins: { legend: { position: "right" } } },
    });
    charts.trend = new Chart($("chart-trend"), {
      type: "line",
      data: {
        labels: [],
        datasets: [
          { label: "waiting 排队", data: [], borderColor: "#ffb74d", backgroundColor: "#ffb74d", tension: 0.2 },
          { label: "calls in progress 通话中", data: [], borderColor: "#42a5f5", backgroundColor: "#42a5f5", tension: 0.2 },
          { label: "agents available 空闲坐席", data: [], borderColor: "#43a047", backgroundColor: "#43a047", tension: 0.2 },
        ],
      },
      options: { maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  // -- what the page shows --------------------------------------------------------------------

  function groupIds() {
    const ids = new Set([...state.groups.keys(), ...state.levels.keys(), ...state.queues.keys()]);
    return [...ids].sort();
  }

  function waitOf(queue, now) {
    return queue && queue.oldest !== null ? (now - queue.oldest) / 1000 : null;
  }

  function renderQueues() {
    const now = Date.now() + state.skew;
    const rows = $("queues");
    rows.replaceChildren();
    let total = 0;
    let longest = null;
    const ids = groupIds();
    for (const id of ids) {
      const queue = state.queues.get(id);
      const waiting = queue ? queue.waiting : 0;
      const wait = waitOf(queue, now);
      total += waiting;
      if (wait !== null && (longest === null || wait > longest)) longest = wait;
      const row = document.createElement("tr");
      row.dataset.testid = "queue-" + id;
      const group = state.groups.get(id);
      cell(row, group && group.name && group.name !== id ? id + " · " + group.name : id);
      cell(row, String(waiting), "queue-" + id + "-waiting", "num");
      cell(row, waiting ? duration(wait) : "-", "queue-" + id + "-longest", "num wait");
      const level = state.levels.get(id);
      const td = cell(row, "", null, "num");
      const counts = document.createElement("span");
      counts.dataset.testid = "queue-" + id + "-sl";
      const pct = document.createElement("span");
      pct.className = "pct";
      if (level && level.offered) {
        counts.textContent = level.answered_within_service_level + " / " + level.offered;
        pct.textContent = percent(level.answered_within_service_level / level.offered)
          + " ≤ " + level.service_level_seconds + " s";
      } else {
        counts.textContent = "-";
        const seconds = (level && level.service_level_seconds) || (group && group.service_level_seconds);
        pct.textContent = seconds ? "≤ " + seconds + " s" : "";
      }
      td.append(counts, pct);
      if (wait !== null && level && wait > level.service_level_seconds) row.className = "long";
      rows.append(row);
    }
    $("waiting-total").textContent = String(total);
    $("longest-total").textContent = total ? duration(longest) : "-";
    if (charts.queues) {
      charts.queues.data.labels = ids;
      charts.queues.data.datasets[0].data = ids.map((id) => (state.queues.get(id) || { waiting: 0 }).waiting);
      charts.queues.update("none");
    }
  }

  function agentCounts() {
    const counts = Object.fromEntries(AGENT_STATES.map((s) => [s, 0]));
    for (const agent of state.agents.values()) counts[agent.state] = (counts[agent.state] || 0) + 1;
    return counts;
  }

  function renderAgents() {
    const counts = agentCounts();
    const rows = $("agents");
    rows.replaceChildren();
    for (const s of AGENT_STATES) {
      const row = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = STATE_NAMES[s];
      th.style.borderLeft = "6px solid " + STATE_COLOURS[s];
      row.append(th);
      cell(row, String(counts[s]), "agents-" + s, "num");
      rows.append(row);
    }
    $("agents-total").textContent = String(state.agents.size);
    $("agents-signed-in").textContent = String(state.agents.size - counts.logged_out);
    if (charts.agents) {
      charts.agents.data.datasets[0].data = AGENT_STATES.map((s) => counts[s]);
      charts.agents.update("none");
    }
  }

  function renderCalls() {
    $("calls-in-progress").textContent = String(state.calls.size);
  }

  function renderKpis(group) {
    const rows = $("kpis");
    rows.replaceChildren();
    for (const [key, name] of KPIS) {
      const value = group ? group[key] : null;
      const row = document.createElement("tr");
      row.dataset.testid = "kpi-" + key;
      cell(row, name);
      let counts = "-";
      if (value && value.numerator !== null && value.numerator !== undefined) {
        counts = key === "availability"  // microseconds of service: the outage and the time
          ? "outage " + duration((value.denominator - value.numerator) / 1e6) + " of " + duration(value.denominator / 1e6)
          : value.numerator + " / " + value.denominator;
      }
      cell(row, counts, "kpi-" + key + "-counts", "num");
      const known = value && value.available && value.value !== null;
      const shown = cell(row, known ? percent(value.value) : "-", "kpi-" + key + "-value", "num");
      if (value && !value.available && value.reason) shown.title = value.reason;
      rows.append(row);
    }
  }

  function trendTick() {
    if (!charts.trend) return;
    const data = charts.trend.data;
    let waiting = 0;
    for (const queue of state.queues.values()) waiting += queue.waiting;
    data.labels.push(new Date().toLocaleTimeString("zh-CN", { timeZone: ZONE }));
    data.datasets[0].data.push(waiting);
    data.datasets[1].data.push(state.calls.size);
    data.datasets[2].data.push(agentCounts().available);
    if (data.labels.length > TREND_POINTS) {
      data.labels.shift();
      for (const set of data.datasets) set.data.shift();
    }
    charts.trend.update("none");
  }

  // -- the reports (today's service level and KPIs) --------------------------------------------

  async function loadReports() {
    const day = today();
    const span = "from=" + day + "&to=" + day + "&tz=" + encodeURIComponent(ZONE);
    try {
      const [groups, levels, report] = await Promise.all([
        api("/v1/skill-groups"),
        api("/v1/reports/skill-groups?" + span + "&interval=total"),
        api("/v1/reports/kpis?" + span + "&interval=total&group_by=all"),
      ]);
      state.groups = new Map(groups.groups.map((g) => [g.id, g]));
      state.levels = new Map(levels.rows.map((r) => [r.key, r.values]));
      renderKpis(report.groups.find((g) => g.scope === "all") || report.groups[0] || null);
      renderQueues();
      $("reports-at").textContent = day + " · " + new Date().toLocaleTimeString("zh-CN", { timeZone: ZONE });
      $("reports-error").hidden = true;
    } catch (error) {
      $("reports-error").textContent = "reports: " + error.message;
      $("reports-error").hidden = false;
    }
  }

  function reportsSoon() {  // after a call ends: once, 2 s later, for the calls that end together
    if (state.soonTimer) return;
    state.soonTimer = setTimeout(() => { state.soonTimer = null; loadReports(); }, 2000);
  }

  // -- live events ----------------------------------------------------------------------------

  function setQueue(view) {
    const oldest = view.oldest_entered_at ? Date.parse(view.oldest_entered_at) : null;
    state.queues.set(view.skill_group_id, { waiting: view.waiting, oldest });
  }

  function setCall(call) {
    if (call.state === "ended") state.calls.delete(call.uuid);
    else state.calls.set(call.uuid, call);
  }

  function handle(message) {
    if (typeof message.seq === "number" && message.type !== "welcome") state.seq = message.seq;
    switch (message.type) {
      case "welcome":
        state.epoch = message.epoch;
        if (!message.resumed) state.seq = message.seq;
        $("link").textContent = "online · " + message.principal.name;
        $("link").className = "badge on";
        break;
      case "snapshot":
        state.agents = new Map(message.agents.map((a) => [a.id, a]));
        state.calls = new Map();
        for (const call of message.calls) setCall(call);
        state.queues = new Map();
        for (const queue of message.queues) setQueue(queue);
        renderAgents(); renderCalls(); renderQueues();
        break;
      case "agent":
        state.agents.set(message.agent.id, message.agent);
        renderAgents();
        break;
      case "call":
        setCall(message.call);
        renderCalls();
        if (message.call.state === "ended") reportsSoon();
        break;
      case "queue":
        setQueue(message.queue);
        renderQueues();
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/v1/events");
    state.socket = socket;
    socket.onopen = () => {
      const first = { token: state.token };
      if (state.seq !== null && state.epoch) { first.since = state.seq; first.epoch = state.epoch; }
      socket.send(JSON.stringify(first));
    };
    socket.onmessage = (event) => { state.retry = 0; handle(JSON.parse(event.data)); };
    socket.onclose = (event) => {
      $("link").textContent = "offline" + (event.reason ? " · " + event.reason : "");
      $("link").className = "badge off";
      if (event.code === 4401) { signOutPage(); return; }
      const delay = Math.min(10000, 500 * 2 ** state.retry++);
      setTimeout(() => { if (state.socket === socket) connect(); }, delay);
    };
  }

  function signOutPage() {
    sessionStorage.removeItem("telephony.token");
    state.socket = null;
    clearInterval(state.reportsTimer);
    $("board").hidden = true;
    $("signin").hidden = false;
  }

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("telephony.token", state.token);
    start();
  });

  function start() {
    $("signin").hidden = true;
    $("board").hidden = false;
    if (!charts.queues) makeCharts();
    renderAgents(); renderCalls(); renderQueues(); renderKpis(null);
    connect();
    loadReports();
    clearInterval(state.reportsTimer);
    state.reportsTimer = setInterval(loadReports, REFRESH_S * 1000);
  }

  setInterval(() => {
    $("clock").textContent = new Date().toLocaleString("zh-CN", { timeZone: ZONE });
    if (!$("board").hidden) renderQueues();  // the waits grow
  }, 1000);
  setInterval(trendTick, TREND_EVERY_S * 1000);

  if (state.token) start();
})();
