/*
 * Scheduler0 dashboard: plain JavaScript, no build step, no library.
 *
 * The API key and secret live in sessionStorage (this tab only, gone when it closes) and go
 * with every call as the API's own headers, so the dashboard can do exactly what the
 * credential may. Everything the API returns is written with textContent, never as HTML:
 * job data is whatever clients stored.
 */
"use strict";

(function () {
  const KEY = "scheduler0.apiKey";
  const SECRET = "scheduler0.apiSecret";
  const REFRESH_MS = 15000;
  // the healthcheck is a cheap probe: in a cluster the section follows elections closely
  const CLUSTER_MS = 2000;
  const MEMBERS_PATH = "/api/v1/cluster/list-nodes";
  // a follower hears from its leader several times a second; past this it is silent
  const LEADER_SILENT_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const state = { projects: new Map(), selectedJob: null, timer: null, awaiting: null, awaitingUntil: 0, poll: null,
                  refreshFailed: false, cluster: newClusterState() };
  // an execution in one of these states changes soon: its job's list is polled meanwhile
  const UNSETTLED = new Set(["scheduled", "dispatched", "retrying"]);
  const POLL_MS = 1000;

  /** What the cluster section remembers between checks (reset at each login). */
  function newClusterState() {
    return { timer: null, seq: 0, alone: true, leader: null, members: null, membersNote: "",
             membersAt: 0, membersRefused: null, trouble: "" };
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function credentials() {
    return { key: sessionStorage.getItem(KEY), secret: sessionStorage.getItem(SECRET) };
  }

  /** One API call: the envelope's data (or the health API's bare snapshot), else ApiError. */
  async function api(method, path, body) {
    const { key, secret } = credentials();
    const headers = { "x-api-key": key || "", "x-secret-key": secret || "" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "the node did not answer (is it running?)");
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let payload = null;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch (e) {
      payload = null;
    }
    if (!response.ok) {
      const message = payload && typeof payload.data === "string"
        ? payload.data : `HTTP ${response.status}`;
      throw new ApiError(response.status, message);
    }
    if (payload && typeof payload === "object" && "success" in payload && "data" in payload) {
      return payload.data;
    }
    return payload;
  }

  /** An element with text and classes; children appended as they are. */
  function el(tag, options, ...children) {
    const node = document.createElement(tag);
    const o = options || {};
    if (o.text !== undefined && o.text !== null) node.textContent = String(o.text);
    if (o.className) node.className = o.className;
    if (o.title) node.title = o.title;
    if (o.data) for (const [k, v] of Object.entries(o.data)) node.dataset[k] = String(v);
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function button(label, className, action) {
    const b = el("button", { text: label, className });
    b.type = "button";
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await action();
      } catch (e) {
        handle(e);
      } finally {
        b.disabled = false;
      }
    });
    return b;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function relative(iso) {
    if (!iso) return "";
    const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
    const size = Math.abs(seconds);
    const amount = size < 90 ? `${size} s` : size < 5400 ? `${Math.round(size / 60)} min`
      : size < 172800 ? `${Math.round(size / 3600)} h` : `${Math.round(size / 86400)} d`;
    return seconds >= 0 ? `in ${amount}` : `${amount} ago`;
  }

  function timeCell(iso, empty) {
    if (!iso) return el("td", { text: empty || "—", className: "muted" });
    return el("td", {},
      el("time", { text: iso, className: "mono" }),
      el("span", { text: ` (${relative(iso)})`, className: "muted" }));
  }

  function notice(message, isError) {
    state.refreshFailed = false;
    const n = $("notice");
    n.textContent = message;
    n.className = isError ? "error" : "";
    n.hidden = !message;
  }

  function handle(error) {
    if (error instanceof ApiError && error.status === 401) {
      logout("The node refused this API key and secret: " + error.message);
      return;
    }
    let message = error.message || String(error);
    // a write the cluster could not take: say what the cluster section shows
    if (error instanceof ApiError && error.status === 503 && state.cluster.trouble) {
      message += ` Cluster: ${state.cluster.trouble}; see the Cluster section.`;
    }
    notice(message, true);
  }

  // -- sections -------------------------------------------------------------------------

  async function loadProjects() {
    const data = await api("GET", "/api/v1/projects?limit=1000");
    state.projects = new Map(data.projects.map((p) => [p.id, p]));
    fill($("projects").tBodies[0], data.projects.map((p) => el("tr", { data: { projectId: p.id } },
      el("td", { text: p.id }), el("td", { text: p.name }),
      el("td", { text: p.description || "", className: "wrap" }),
      el("td", { text: p.dateCreated, className: "mono" }))));
    $("projects-count").textContent = countText(data, data.projects.length, "project");
    const filter = $("project-filter");
    const chosen = filter.value;
    filter.replaceChildren(el("option", { text: "all projects" }),
      ...data.projects.map((p) => el("option", { text: `${p.id}: ${p.name}` })));
    filter.options[0].value = "";
    data.projects.forEach((p, i) => { filter.options[i + 1].value = String(p.id); });
    filter.value = state.projects.has(Number(chosen)) ? chosen : "";
  }

  function countText(page, shown, noun) {
    const plural = page.total === 1 ? noun : noun + "s";
    return shown < page.total ? `${shown} of ${page.total} ${plural} shown`
      : `${page.total} ${plural}`;
  }

  async function loadJobs() {
    const project = $("project-filter").value;
    const data = await api("GET", "/api/v1/jobs?limit=500" +
      (project ? `&projectId=${encodeURIComponent(project)}` : ""));
    fill($("jobs").tBodies[0], data.jobs.map(jobRow));
    $("jobs-count").textContent = countText(data, data.jobs.length, "job");
  }

  function jobRow(job) {
    const project = state.projects.get(job.projectId);
    const row = el("tr", { data: { jobId: job.id }, className: job.id === state.selectedJob ? "selected" : "" },
      el("td", { text: job.id, className: "job-id" }),
      el("td", { text: project ? project.name : job.projectId, className: "job-project" }),
      el("td", { className: "job-spec" }, el("code", { text: job.spec })),
      el("td", { text: job.timezone, className: "job-timezone" }),
      Object.assign(timeCell(job.nextRunAt, job.paused ? "— (paused)" : "— (none)"),
        { className: "job-next-run" }),
      el("td", { text: job.paused ? "paused" : "active",
                 className: "job-state state-" + (job.paused ? "paused" : "active") }),
      el("td", { text: job.callbackUrl, className: "wrap job-callback" }),
      el("td", { className: "job-actions" },
        job.paused
          ? button("Resume", "resume", () => jobAction(job.id, "resume"))
          : button("Pause", "pause", () => jobAction(job.id, "pause")),
        button("Run now", "run", () => runNow(job.id)),
        button("Executions", "show-executions", () => showExecutions(job.id))));
    return row;
  }

  async function jobAction(jobId, action) {
    const job = await api("POST", `/api/v1/jobs/${jobId}/${action}`);
    notice(`Job ${jobId} ${job.paused ? "paused" : "resumed"}.`);
    await loadJobs();
  }

  async function runNow(jobId) {
    const run = await api("POST", `/api/v1/jobs/${jobId}/run`);
    notice(`Job ${jobId}: occurrence ${run.executionId} sent now.`);
    expect(run.executionId);
    await showExecutions(jobId);
  }

  async function showExecutions(jobId) {
    if (state.selectedJob !== jobId) clearTimeout(state.poll);
    state.selectedJob = jobId;
    for (const row of $("jobs").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.jobId === String(jobId));
    }
    await loadExecutions();
  }

  async function loadExecutions() {
    const jobId = state.selectedJob;
    if (jobId === null) return;
    $("executions-section").hidden = false;
    $("executions-title").textContent = `Executions of job ${jobId}`;
    let data;
    try {
      data = await api("GET", `/api/v1/jobs/${jobId}/executions?limit=50`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        fill($("executions").tBodies[0], []);
        $("executions-count").textContent = "no executions recorded yet";
        watch(jobId, []);
        return;
      }
      throw e;
    }
    fill($("executions").tBodies[0], data.executions.map((x) => el("tr", { data: { executionId: x.executionId } },
      el("td", { text: x.executionId, className: "mono" }),
      el("td", { text: x.scheduledTime, className: "mono" }),
      el("td", { text: x.state, className: "state-" + x.state }),
      el("td", { text: x.attempts }),
      el("td", { text: x.lastStatus === null ? "" : x.lastStatus }),
      el("td", { text: x.lastError || "", className: "wrap error" }),
      el("td", { text: x.durationMs === null ? "" : `${x.durationMs} ms` }),
      timeCell(x.nextRetryAt, " "),
      el("td", {}, x.state === "dead"
        ? button("Retry", "retry", () => retryExecution(x.executionId, jobId)) : null))));
    $("executions-count").textContent = countText(data, data.executions.length, "execution");
    watch(jobId, data.executions);
  }

  /** Watch for execution executionId of the selected job to settle (for at most a minute). */
  function expect(executionId) {
    state.awaiting = executionId;
    state.awaitingUntil = Date.now() + 60000;
  }

  /** Polls the job's executions while one is about to change (or a run is not listed yet). */
  function watch(jobId, executions) {
    if (state.awaiting !== null && executions.some(
      (x) => x.executionId === state.awaiting && !UNSETTLED.has(x.state))) {
      state.awaiting = null;
      loadHealth().catch(handle);  // its queue and dead letters changed with it
    } else if (Date.now() > state.awaitingUntil) {
      state.awaiting = null;
    }
    clearTimeout(state.poll);
    if (state.awaiting !== null || executions.some((x) => UNSETTLED.has(x.state))) {
      state.poll = setTimeout(() => {
        if (state.selectedJob === jobId) loadExecutions().catch(handle);
      }, POLL_MS);
    }
  }

  async function retryExecution(executionId, jobId) {
    await api("POST", `/api/v1/executions/${encodeURIComponent(executionId)}/retry`);
    notice(`Execution ${executionId} sent again.`);
    if (jobId === state.selectedJob) expect(executionId);
    await Promise.all([loadExecutions(), loadHealth()]);
  }

  async function loadHealth() {
    let health;
    try {
      health = await api("GET", "/api/monitoring/scheduler/health");
    } catch (e) {
      if (e instanceof ApiError && (e.status === 403 || e.status === 503)) {
        $("health").hidden = true;
        $("health-error").hidden = false;
        $("health-error").textContent = e.message;
        return;
      }
      throw e;
    }
    $("health-error").hidden = true;
    $("health").hidden = false;
    let running = health.enabled ? "running" : "halted";
    if (health.role === "leader" && !health.executing) {
      // not halted: the leader assigns the jobs to the followers and executes none
      running = "standing by (Raft leader: the followers execute the jobs, see Cluster)";
    } else if (health.role && !health.executing) {
      running = "standing by (this node owns no jobs now, see Cluster)";
    } else if (health.role) {
      running += ` (${health.role}${health.executing ? ", executing" : ""})`;
    }
    $("health-enabled").textContent = running;
    $("queue-depth").textContent = health.queue.depth;
    $("queue-retry").textContent = health.queue.retryWaiting;
    $("queue-due").textContent = health.queue.dueWithinSeconds;
    $("skipped-total").textContent = health.skipped ? health.skipped.total : 0;
    $("dead-count").textContent = health.deadLetter.count;
    fill($("dead-letters").tBodies[0], health.deadLetter.tasks.map((t) => el("tr", { data: { executionId: t.executionId } },
      el("td", { text: t.executionId, className: "mono" }),
      el("td", { text: t.jobId }),
      el("td", { text: t.instance, className: "wrap" }),
      el("td", { text: t.failures }),
      el("td", { text: t.lastError || "", className: "wrap error" }),
      el("td", {}, button("Retry", "retry", () => retryExecution(t.executionId, t.jobId))))));
    fill($("breakers").tBodies[0], health.instances.map((i) => {
      const held = i.breaker.state !== "closed";
      // a host's open breaker holds the endpoint: resetting the host is what frees it
      const target = i.breaker.scope === "host" ? i.host : i.instance;
      const lastError = i.pollStatus.lastError;
      return el("tr", { data: { instance: i.instance } },
        el("td", { text: i.instance, className: "wrap mono" }),
        el("td", { text: i.breaker.state, className: "breaker-" + i.breaker.state }),
        el("td", { text: i.breaker.scope }),
        el("td", { text: i.breaker.failureCount }),
        timeCell(i.breaker.retryAt, " "),
        el("td", { text: lastError ? lastError.message : "", className: "wrap error" }),
        el("td", {}, held ? button("Reset", "reset", () => resetBreaker(target)) : null));
    }));
  }

  async function resetBreaker(target) {
    await api("POST", `/api/monitoring/breakers/${encodeURIComponent(target)}/reset`);
    notice(`Breaker of ${target} reset.`);
    await loadHealth();
  }

  async function retryAllDead() {
    const result = await api("POST", "/api/monitoring/dlq/retry");
    const sent = result && Array.isArray(result.retried) ? result.retried.length : 0;
    const skipped = result && Array.isArray(result.skipped) ? result.skipped.length : 0;
    notice(`${sent} dead letter(s) sent again` +
      (skipped ? `; ${skipped} skipped (their job was deleted).` : "."));
    await loadHealth();
  }

  // -- cluster ---------------------------------------------------------------------------

  /** The member list's answer when it cannot be read: why, and that the healthcheck's view
   * is what the section shows instead. */
  function membersUnreadable(error) {
    const fallback = "shown instead: what this node's healthcheck gives";
    if (error.status === 404 || error.status === 405) {
      return `This node serves no member list (GET ${MEMBERS_PATH}); ${fallback}.`;
    }
    if (error.status === 401 || error.status === 403) {
      return `The member list (GET ${MEMBERS_PATH}) needs the cluster's peer credentials, ` +
        `which this API key is not (${error.message}); ${fallback}.`;
    }
    return `The member list could not be read just now (${error.message}); ${fallback}.`;
  }

  /** raftStats.last_contact in milliseconds ("123ms"), or null ("never", "0" on a leader). */
  function contactMs(stats) {
    const ms = /^(\d+(?:\.\d+)?)ms$/.exec(String(stats.last_contact ?? ""));
    return ms ? Number(ms[1]) : null;
  }

  /** How long ago this node last heard from the leader. */
  function lastContact(stats) {
    if (stats.state === "Leader") return "— (this node is the leader)";
    const n = contactMs(stats);
    if (n === null) return String(stats.last_contact || "never");
    return n < 10000 ? `${Math.round(n)} ms ago` : `${Math.round(n / 1000)} s ago`;
  }

  /**
   * The leader as this node sees it: C{text} for the section, and C{trouble}, what is wrong
   * with it ("" when nothing is). A follower that lost every peer keeps naming the last
   * leader it heard from (it holds no election alone), so a leader not heard from for
   * LEADER_SILENT_MS is reported as unreachable: writes wait and fail (503) meanwhile.
   */
  function describeLeader(health, stats) {
    const id = health.leaderId ? String(health.leaderId) : "?";
    if (!health.leaderAddress) {
      return { text: "none right now: an election is running or too few nodes are reachable; " +
                 "writes are refused (503) until a leader is elected",
               trouble: "there is no leader right now (an election is running, or too few " +
                 "nodes are reachable)" };
    }
    const name = `node ${id} (Raft ${health.leaderAddress})`;
    if (stats.state === "Leader") return { text: name + ": this node", trouble: "" };
    const silent = contactMs(stats);
    if (silent !== null && silent > LEADER_SILENT_MS) {
      const seconds = Math.round(silent / 1000);
      return { text: `${name}, not heard from for ${seconds} s: down or unreachable from this ` +
                 "node; writes wait and fail (503) until a majority of nodes is reachable again",
               trouble: `the leader, node ${id}, has not been heard from for ${seconds} s ` +
                 "(down, or unreachable from this node)" };
    }
    return { text: name, trouble: "" };
  }

  /** The section from one healthcheck answer. */
  function renderCluster(health) {
    const stats = health.raftStats || {};
    const peers = Number(stats.num_peers || 0);
    $("cluster-error").hidden = true;
    state.cluster.alone = peers === 0;
    if (peers === 0) {
      state.cluster.trouble = "";
      $("cluster-summary").textContent = "This node runs alone (no cluster).";
      $("cluster-view").hidden = true;
      return;
    }
    const raftState = stats.state || "unknown";
    const described = describeLeader(health, stats);
    state.cluster.trouble = described.trouble;
    const leaderId = health.leaderId ? String(health.leaderId) : "";
    const leads = raftState === "Leader" && leaderId;
    const leaderName = health.leaderAddress
      ? `node ${leaderId || "?"} (Raft ${health.leaderAddress})` : "";
    $("cluster-summary").textContent = `This node is ${raftState} in a cluster of ${peers + 1} ` +
      "nodes; leader: " + (leaderName || "none right now") +
      (leaderName && state.cluster.trouble ? ", unreachable" : "") + ".";
    $("cluster-node").textContent = `${location.host} (${leads ? `node ${leaderId}, ` : ""}${raftState})`;
    $("cluster-state").textContent = raftState;
    $("cluster-state").className = "raft-" + raftState.toLowerCase();
    $("cluster-term").textContent = stats.term ?? "";
    const leader = $("cluster-leader");
    leader.dataset.leaderId = leaderId;
    leader.textContent = described.text;
    leader.className = described.trouble ? "error" : "";
    const connected = Number(stats.connected_peers || 0);
    $("cluster-peers").textContent = `${peers} (${connected} connected)`;
    $("cluster-peers").className = connected < peers ? "error" : "";
    $("cluster-commit").textContent = stats.commit_index ?? "";
    $("cluster-applied").textContent = stats.applied_index ?? "";
    $("cluster-contact").textContent = lastContact(stats);
    $("cluster-checked").textContent = new Date().toLocaleTimeString();
    fill($("cluster").tBodies[0], Object.keys(stats).sort().map((name) => el("tr", {},
      el("td", { text: name, className: "mono" }), el("td", { text: stats[name], className: "mono" }))));
    $("cluster-view").hidden = false;
  }

  /** The member list as the API gives it (one column per field), or a note saying why not. */
  async function loadMembers(leaderChanged) {
    const c = state.cluster;
    if (c.membersRefused === null && (leaderChanged || Date.now() - c.membersAt >= REFRESH_MS)) {
      c.membersAt = Date.now();
      try {
        const members = await api("GET", MEMBERS_PATH);
        if (!Array.isArray(members)) throw new ApiError(200, "not a list of nodes");
        c.members = members;
        c.membersNote = "";
      } catch (e) {
        // refused (an API key may not read it) or absent: asked once per login, not again
        if (e instanceof ApiError && [401, 403, 404, 405].includes(e.status)) {
          c.membersRefused = membersUnreadable(e);
        }
        c.members = null;
        c.membersNote = membersUnreadable(e);
      }
    }
    const note = c.membersRefused || c.membersNote;
    $("cluster-members-note").textContent = note;
    $("cluster-members-note").hidden = !note;
    const table = $("cluster-members");
    table.hidden = c.members === null;
    if (c.members === null) return;
    const columns = [];
    for (const m of c.members) for (const k of Object.keys(m || {})) if (!columns.includes(k)) columns.push(k);
    table.tHead.rows[0].replaceChildren(...columns.map((k) => el("th", { text: k })));
    fill(table.tBodies[0], c.members.map((m) => el("tr", { data: { memberId: (m || {}).id ?? "" },
      className: m && m.isLeader ? "leader" : "" },
      ...columns.map((k) => el("td", { text: m && m[k] !== undefined && m[k] !== null ? m[k] : "" })))));
  }

  /**
   * The cluster section: this node's healthcheck (no credential, never rate limited), and
   * the member list when this key can read it. A failure shows in the section (the node
   * may be down while the others are fine); an answer older than one already shown is
   * dropped.
   */
  async function loadCluster() {
    const c = state.cluster;
    const seq = ++c.seq;
    let health;
    try {
      health = await api("GET", "/api/v1/healthcheck");
    } catch (e) {
      if (seq !== c.seq) return;
      $("cluster-error").textContent = `This node's healthcheck failed: ${e.message}. ` +
        "What follows is its last answer.";
      $("cluster-error").hidden = false;
      return;
    }
    if (seq !== c.seq) return;
    renderCluster(health);
    if (c.alone) return;
    const leader = `${health.leaderId}@${health.leaderAddress}`;
    const changed = leader !== c.leader;
    c.leader = leader;
    await loadMembers(changed);
  }

  /** Refreshes the cluster section every CLUSTER_MS in a cluster (a leader change shows within
   * seconds), every REFRESH_MS alone; not while the tab is hidden. */
  function clusterLoop() {
    clearTimeout(state.cluster.timer);
    const next = () => {
      if (!credentials().key) return;  // logged out meanwhile
      clearTimeout(state.cluster.timer);
      state.cluster.timer = setTimeout(clusterLoop, state.cluster.alone ? REFRESH_MS : CLUSTER_MS);
    };
    if (document.hidden) {
      next();
      return;
    }
    loadCluster().catch(handle).finally(next);
  }

  async function refresh() {
    await loadProjects();
    const results = await Promise.allSettled([loadJobs(), loadExecutions(), loadHealth()]);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    $("who").textContent = `key ${credentials().key.slice(0, 8)}… · updated ${new Date().toLocaleTimeString()}`;
  }

  // -- session --------------------------------------------------------------------------

  function show(loggedIn) {
    $("login").hidden = loggedIn;
    $("dashboard").hidden = !loggedIn;
    $("session").hidden = !loggedIn;
  }

  function logout(message) {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(SECRET);
    clearInterval(state.timer);
    clearTimeout(state.poll);
    clearTimeout(state.cluster.timer);
    state.timer = null;
    state.cluster = newClusterState();
    state.selectedJob = null;
    state.awaiting = null;
    show(false);
    $("login-error").textContent = message || "";
    $("login-error").hidden = !message;
  }

  /** One periodic refresh. An error it shows is cleared by the next one that succeeds (the
   * node is back, a leader was elected); an action's message stays until the next action. */
  function periodicRefresh() {
    return refresh().then(() => {
      if (state.refreshFailed) notice("");
      state.refreshFailed = false;
    }, (e) => {
      handle(e);
      state.refreshFailed = true;  // after handle: notice() forgets whose message it shows
    });
  }

  async function start() {
    show(true);
    notice("");
    clusterLoop();
    // refreshed from now on even if this first one fails (the node may be restarting)
    clearInterval(state.timer);
    state.timer = setInterval(() => {
      if (!document.hidden) periodicRefresh();
    }, REFRESH_MS);
    await periodicRefresh();
  }

  async function login(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    const secret = $("api-secret").value.trim();
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(SECRET, secret);
    try {
      await api("GET", "/api/v1/projects?limit=1");
    } catch (e) {
      logout(e instanceof ApiError && e.status === 401
        ? "The node refused this API key and secret: " + e.message : e.message);
      return;
    }
    $("api-secret").value = "";
    $("login-error").hidden = true;
    await start();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => logout(""));
    $("refresh").addEventListener("click", () => {
      loadCluster().catch(handle);
      refresh().then(() => notice("")).catch(handle);
    });
    $("project-filter").addEventListener("change", () => loadJobs().catch(handle));
    $("dlq-retry-all").addEventListener("click", () => retryAllDead().catch(handle));
    if (credentials().key) start();
    else show(false);
  });
})();
