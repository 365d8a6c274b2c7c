// The agent console: the HTTP API for actions, WS /v1/events for what happens (no build step).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem("telephony.token") || "",
    agentId: null, seq: null, epoch: null, socket: null, retry: 0,
    call: null,   // the agent's current call: {uuid, caller, state}
  };

  function log(text, error) {
    const item = document.createElement("li");
    item.textContent = new Date().toLocaleTimeString() + " " + text;
    if (error) item.className = "error";
    $("log").prepend(item);
    while ($("log").children.length > 50) $("log").lastChild.remove();
  }

  async function api(method, path, body) {
    const reply = await fetch(path, {
      method,
      headers: { "Authorization": "Bearer " + state.token, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await reply.json(); } catch (e) { data = null; }
    const detail = data && (data.detail || data.error);
    log(method + " " + path + " -> " + reply.status + (detail ? " " + detail : ""), !reply.ok);
    return { ok: reply.ok, status: reply.status, data };
  }

  // -- what the page shows ------------------------------------------------------------------

  function showAgent(agent) {
    if (!agent || agent.id !== state.agentId) return;
    $("agent-name").textContent = agent.name + " (" + agent.id + ", ext " + agent.extension + ")";
    $("agent-state").textContent = agent.state;
    $("agent-reason").textContent = agent.reason ? "· " + agent.reason : "";
  }

  function showCall(call) {
    if (call && call.state === "ended") call = null;
    state.call = call;
    $("call-line").textContent = call
      ? call.caller + " → " + call.hotline + " · " + call.state + " · " + call.uuid
      : "no call";
  }

  function showPop(pop) {
    if (!pop) { $("pop").hidden = true; return; }
    $("pop").hidden = false;
    $("pop-caller").textContent = pop.caller || "";
    $("pop-hotline").textContent = pop.hotline || "";
    $("pop-ivr").textContent = pop.ivr_path || "-";
    $("pop-group").textContent = pop.skill_group_id || "-";
    $("pop-blocked").hidden = !pop.blocked;
    const rows = $("pop-history");
    rows.replaceChildren();
    for (const call of pop.history || []) {
      const row = document.createElement("tr");
      const when = new Date(call.arrived_at).toLocaleString();
      for (const text of [when, call.outcome || "in progress", call.agent_name || call.agent_id || "-"]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      rows.append(row);
    }
    const count = (pop.history || []).length;
    $("pop-history-note").textContent = pop.history_error
      ? "history unavailable: " + pop.history_error
      : count + " call(s) in the last " + pop.history_days + " days";
    if (!state.call || state.call.uuid !== pop.call_uuid) {
      showCall({ uuid: pop.call_uuid, caller: pop.caller, hotline: pop.hotline, state: "ringing" });
    }
  }

  // -- live events ----------------------------------------------------------------------------

  function handle(message) {
    if (typeof message.seq === "number" && message.type !== "welcome") state.seq = message.seq;
    switch (message.type) {
      case "welcome":
        state.epoch = message.epoch;
        state.agentId = message.principal.agent_id;
        if (!message.resumed) state.seq = message.seq;  // a snapshot at that number follows
        $("link").textContent = "online · " + message.principal.name;
        $("link").className = "badge on";
        log("connected as " + message.principal.name + " (" + message.principal.role + ")"
          + (message.resumed ? ", " + message.replayed + " missed event(s) replayed" : ""));
        break;
      case "snapshot":
        for (const agent of message.agents) showAgent(agent);
        showCall(message.calls.find((c) => c.agent_id === state.agentId) || null);
        showPop(message.screen_pop);
        break;
      case "agent":
        showAgent(message.agent);
        break;
      case "call": {
        const call = message.call;
        const mine = call.agent_id === state.agentId || (state.call && state.call.uuid === call.uuid);
        if (mine) showCall(call);
        if (call.state === "ended" && !state.call) log("call " + call.uuid + " ended: " + message.outcome);
        break;
      }
      case "screen_pop":
        showPop(message);
        log("ringing: " + message.caller + " on " + message.hotline);
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
      $("link").textContent = "offline";
      $("link").className = "badge off";
      log("events closed (" + event.code + (event.reason ? " " + event.reason : "") + ")", true);
      if (event.code === 4401) { signOutPage(); return; }
      const delay = Math.min(10000, 500 * 2 ** state.retry++);
      setTimeout(() => { if (state.socket === socket) connect(); }, delay);
    };
  }

  function signOutPage() {
    sessionStorage.removeItem("telephony.token");
    state.socket = null;
    $("desk").hidden = true;
    $("signin").hidden = false;
  }

  // -- buttons --------------------------------------------------------------------------------

  function target() {
    const value = $("target").value.trim();
    return { [$("target-kind").value]: value };
  }

  const CALL_BODIES = {
    hold: () => ({}),
    retrieve: () => ({}),
    hangup: () => ({}),
    transfer: () => ({ to: target(), mode: $("transfer-mode").value }),
    "three-way": () => ({ to: target() }),
  };

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const agentAction = button.dataset.agentAction;
    const callAction = button.dataset.callAction;
    if (agentAction && state.agentId) {
      const body = agentAction === "busy" ? { reason: $("busy-reason").value || null } : undefined;
      api("POST", "/v1/agents/" + encodeURIComponent(state.agentId) + "/" + agentAction, body);
    } else if (callAction) {
      if (!state.call) { log(callAction + ": no call", true); return; }
      const path = "/v1/calls/" + encodeURIComponent(state.call.uuid) + "/" + callAction;
      api("POST", path, CALL_BODIES[callAction]());
    }
  });

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("telephony.token", state.token);
    start();
  });

  function start() {
    $("signin").hidden = true;
    $("desk").hidden = false;
    connect();
  }

  if (state.token) start();
})();
