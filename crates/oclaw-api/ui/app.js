// The OpenClaw console: one page, plain JavaScript, no build step. Everything it shows comes
// from the node's /v1 API with the signed-in token; text from tasks, bots and users is only
// ever set as text (never as HTML).
"use strict";
(function () {
  const T = {
    en: {
      overview: "Overview", tasks: "Tasks", bots: "Bots", conversations: "Conversations", approvals: "Approvals",
      knowledge: "Knowledge", audit: "Audit", chat: "Chat", signin: "Sign in", signout: "Sign out",
      token: "API token (or an OIDC ID token)", signin_help: "Paste a token from `oclaw token create`. A node on loopback without tokens lets you in without one.",
      nodes: "Nodes", queues: "Queues", signals: "Signals", node: "Node", components: "Components", status: "Status",
      leader: "Leader", queue: "Queue", queued: "Queued", running: "Running", scheduled: "Scheduled", waiting: "Waiting",
      dead: "Dead", api_p99: "API P99", backlog: "Largest backlog", sched_fail: "Scheduling failures", cpu: "Node CPU",
      memory: "Node memory", threshold: "alert above", throughput: "Tasks finished per second", latency: "API P99 (seconds)",
      since_open: "since this page opened (up to an hour)", id: "Id", bot: "Bot", created: "Created", attempts: "Attempts",
      all: "all", next: "Next page", first: "First page", filter: "Filter", input: "Input", output: "Output", error: "Error",
      steps: "Steps", step: "Step", at: "At", trace: "Trace id", cancel: "Cancel", retry: "Retry", retry_from: "Retry from step",
      redrive: "Retry the dead on this page", run: "Run", run_input: "Run with input (JSON)", recent: "Recent runs",
      triggers: "Triggers", definition: "Definition", description: "Description", state: "State", user: "User", agent: "Agent",
      take: "Take over", release: "Hand back to the bot", reply: "Reply", send: "Send", question: "Question",
      approve: "Approve", reject: "Reject", message: "Message", comment: "Comment", collections: "Collections",
      create: "Create", name: "Name", documents: "Documents", chunks: "Chunks", add_doc: "Add a document", title: "Title",
      text: "Text", search: "Search", query: "Query", score: "Score", actor: "Actor", action: "Action", target: "Target",
      result: "Result", none: "Nothing here yet.", done: "Done", waits_for: "Waits for", chat_bot: "Bot to chat with",
      no_ws_bots: "No bot with a websocket trigger is loaded.", viewer_note: "Your role is read-only: actions are hidden.",
      live: "live", role: "role", tenant: "tenant", handed_off: "Handed-off conversations", history: "History",
      older: "Older", upload: "Add", checkpoint: "Checkpoint", worker: "Worker", parent: "Parent task",
    },
    zh: {
      overview: "概览", tasks: "任务", bots: "机器人", conversations: "会话", approvals: "审批", knowledge: "知识库",
      audit: "审计", chat: "聊天", signin: "登录", signout: "退出", token: "API 令牌（或 OIDC ID 令牌）",
      signin_help: "粘贴 `oclaw token create` 生成的令牌。未配置令牌的本机节点无需令牌即可进入。",
      nodes: "节点", queues: "队列", signals: "关键指标", node: "节点", components: "组件", status: "状态", leader: "主节点",
      queue: "队列", queued: "排队", running: "运行中", scheduled: "定时", waiting: "等待", dead: "死信",
      api_p99: "API P99", backlog: "最大积压", sched_fail: "调度失败率", cpu: "节点 CPU", memory: "节点内存",
      threshold: "告警阈值", throughput: "每秒完成任务数", latency: "API P99（秒）", since_open: "自本页打开起（最多一小时）",
      id: "编号", bot: "机器人", created: "创建时间", attempts: "尝试次数", all: "全部", next: "下一页", first: "第一页",
      filter: "筛选", input: "输入", output: "输出", error: "错误", steps: "步骤", step: "步骤", at: "时间",
      trace: "追踪 ID", cancel: "取消", retry: "重试", retry_from: "从此步骤重试", redrive: "重试本页死信任务",
      run: "运行", run_input: "以输入运行（JSON）", recent: "最近运行", triggers: "触发器", definition: "定义",
      description: "说明", state: "状态", user: "用户", agent: "坐席", take: "接管", release: "交还机器人", reply: "回复",
      send: "发送", question: "问题", approve: "批准", reject: "拒绝", message: "消息", comment: "备注",
      collections: "知识集合", create: "创建", name: "名称", documents: "文档", chunks: "分块", add_doc: "添加文档",
      title: "标题", text: "正文", search: "搜索", query: "查询", score: "得分", actor: "操作者", action: "操作",
      target: "对象", result: "结果", none: "暂无内容。", done: "完成", waits_for: "等待", chat_bot: "聊天机器人",
      no_ws_bots: "没有加载带 websocket 触发器的机器人。", viewer_note: "你的角色只读：操作按钮已隐藏。", live: "实时",
      role: "角色", tenant: "租户", handed_off: "已转人工的会话", history: "记录", older: "更早", upload: "添加",
      checkpoint: "检查点", worker: "执行节点", parent: "父任务", kind: "类型", deadline: "截止时间",
      file: "或选择文本文件（Markdown、HTML、纯文本）",
    },
  };
  let lang = localStorage.getItem("oclaw.lang") || ((navigator.language || "en").startsWith("zh") ? "zh" : "en");
  if (!T[lang]) lang = "en";
  const t = (k) => T[lang][k] || T.en[k] || k;
  const ROLES = ["viewer", "operator", "developer", "admin"];
  let me = null;
  let token = sessionStorage.getItem("oclaw.token") || "";
  const main = document.getElementById("main");

  // --- DOM helpers: text is always text ---
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const json = (v) => h("pre", {}, JSON.stringify(v, null, 2));
  const badge = (s) => h("span", { class: "status s-" + s }, s);
  const when = (s) => (s ? new Date(s).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : "");
  const can = (role) => me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
  function table(cols, rows) {
    if (!rows.length) return h("p", { class: "muted" }, t("none"));
    return h("table", {}, h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, t(c))))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
  }
  function toast(text) {
    const box = document.getElementById("toast");
    const d = h("div", {}, text);
    box.append(d);
    setTimeout(() => d.remove(), 6000);
  }

  // --- the API ---
  async function api(path, opts = {}) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    const res = await fetch(path, { method: opts.method || "GET", headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
    if (!res.ok) {
      const e = (body && body.error) || {};
      const err = new Error((e.code ? e.code + ": " : res.status + ": ") + (e.message || text));
      err.status = res.status;
      throw err;
    }
    return body;
  }
  async function act(label, fn) {
    try { await fn(); toast(label + ": " + t("done")); render(); } catch (e) { toast(e.message); }
  }

  // --- live updates: Server-Sent Events read through fetch (so the token goes in a header) ---
  let overview = null;
  const samples = [];
  let stream = null;
  async function listen() {
    if (stream) stream.abort();
    stream = new AbortController();
    try {
      const headers = token ? { authorization: "Bearer " + token } : {};
      const res = await fetch("/v1/stream", { headers, signal: stream.signal });
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const chunk = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(chunk);
          const data = chunk.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (ev && ev[1] === "overview" && data) onOverview(JSON.parse(data));
        }
      }
    } catch (e) {
      if (e.name === "AbortError") return;
    }
    setTimeout(listen, 2000);
  }
  async function onOverview(o) {
    overview = o;
    try { await sample(); } catch (_) { /* metrics unreachable: the charts wait */ }
    if (live) live();
  }

  // The seed's four signals from /metrics, as rates over the last sample interval.
  function parseMetrics(text) {
    const m = {};
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const mm = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([^ ]+)/.exec(line);
      if (!mm) continue;
      (m[mm[1]] = m[mm[1]] || []).push({ labels: mm[2] || "", value: parseFloat(mm[3]) });
    }
    return m;
  }
  const total = (m, name) => (m[name] || []).reduce((a, s) => a + (isFinite(s.value) ? s.value : 0), 0);
  function buckets(m, name) {
    const by = {};
    for (const s of m[name + "_bucket"] || []) {
      const le = /le="([^"]+)"/.exec(s.labels);
      if (le) by[le[1]] = (by[le[1]] || 0) + s.value;
    }
    return by;
  }
  async function sample() {
    const res = await fetch("/metrics");
    const m = parseMetrics(await res.text());
    const now = Date.now();
    const s = { at: now, finished: total(m, "oclaw_task_duration_seconds_count"), api: buckets(m, "oclaw_api_request_duration_seconds"),
      attempts: total(m, "oclaw_scheduling_attempts_total"), failures: total(m, "oclaw_scheduling_failures_total"),
      cpu: Math.max(0, ...(m.oclaw_node_cpu_utilization_ratio || []).map((x) => x.value)),
      mem: Math.max(0, ...(m.oclaw_node_memory_utilization_ratio || []).map((x) => x.value)),
      backlog: Math.max(0, ...(m.oclaw_queue_backlog || []).map((x) => x.value)) };
    const prev = samples[samples.length - 1];
    if (prev) {
      const secs = (now - prev.at) / 1000;
      s.rate = Math.max(0, (s.finished - prev.finished) / secs);
      s.p99 = p99(prev.api, s.api);
      const da = s.attempts - prev.attempts;
      s.failRatio = da > 0 ? (s.failures - prev.failures) / da : 0;
    }
    samples.push(s);
    while (samples.length && now - samples[0].at > 3600e3) samples.shift();
  }
  function p99(before, after) {
    const les = Object.keys(after).sort((a, b) => parseFloat(a) - parseFloat(b));
    const count = (after["+Inf"] || 0) - (before["+Inf"] || 0);
    if (count <= 0) return null;
    for (const le of les) if ((after[le] || 0) - (before[le] || 0) >= 0.99 * count) return le === "+Inf" ? Infinity : parseFloat(le);
    return null;
  }
  function chart(label, values, limit) {
    const w = 600, hgt = 120;
    const max = Math.max(limit || 0, ...values.filter(isFinite), 1e-9) * 1.1;
    const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * w},${hgt - (isFinite(v) ? v : 0) / max * hgt}`).join(" ");
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "chart"); svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`); svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img"); svg.setAttribute("aria-label", label);
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    line.setAttribute("points", pts); svg.append(line);
    if (limit) {
      const l = document.createElementNS(svg.namespaceURI, "line");
      const y = hgt - limit / max * hgt;
      l.setAttribute("x1", 0); l.setAttribute("x2", w); l.setAttribute("y1", y); l.setAttribute("y2", y); svg.append(l);
    }
    return svg;
  }

  // --- pages ---
  let live = null; // what to refresh on each overview event
  const pages = {
    async overview() {
      const draw = () => {
        const o = overview;
        const last = samples[samples.length - 1] || {};
        const nodes = (o && o.nodes) || [];
        const queues = (o && o.queues) || [];
        const backlog = Math.max(0, ...queues.map((q) => q.queued || 0));
        const sig = (label, value, shown, limit, over) => h("div", { class: "card" }, h("div", { class: "t" }, label),
          h("div", { class: "v" }, shown), badge(value === null || value === undefined ? "ok" : over ? "alert" : "ok"),
          h("div", { class: "t" }, t("threshold") + " " + limit));
        const pct = (v) => (v === undefined || v === null ? "–" : (v * 100).toFixed(1) + " %");
        return [
          h("h1", {}, t("overview"), " ", h("span", { class: "muted" }, "· " + t("live"))),
          h("h2", {}, t("signals")),
          h("div", { class: "cards", id: "signals" },
            sig(t("api_p99"), last.p99, last.p99 === null || last.p99 === undefined ? "–" : (last.p99 === Infinity ? "> 10 s" : last.p99 + " s"), "0.5 s", last.p99 > 0.5),
            sig(t("backlog"), backlog, String(backlog), "1000", backlog > 1000),
            sig(t("sched_fail"), last.failRatio, pct(last.failRatio), "5 %", last.failRatio > 0.05),
            sig(t("cpu") + " / " + t("memory"), last.cpu, pct(last.cpu) + " / " + pct(last.mem), "85 %", last.cpu > 0.85 || last.mem > 0.85)),
          h("h2", {}, t("nodes")),
          table(["node", "components", "status", "leader"], nodes.map((n) => [n.id || "", (n.components || []).join(", "), badge(n.status || "Ready"), n.leader ? "✓" : ""])),
          h("h2", {}, t("queues")),
          table(["queue", "queued", "running", "scheduled", "waiting", "dead"], queues.map((q) => [q.name, q.queued, q.running, q.scheduled, q.waiting, q.dead])),
          h("h2", {}, t("throughput"), " ", h("span", { class: "muted" }, t("since_open"))),
          chart(t("throughput"), samples.slice(1).map((s) => s.rate)),
          h("h2", {}, t("latency")),
          chart(t("latency"), samples.slice(1).map((s) => (s.p99 === null ? 0 : s.p99)), 0.5),
        ];
      };
      live = () => {
        if (route().page !== "overview") return;
        paint(draw());
        // For the console benchmark: the first time the overview shows the node's data.
        if (!performance.getEntriesByName("oclaw:overview-live").length) performance.mark("oclaw:overview-live");
      };
      if (overview && !performance.getEntriesByName("oclaw:overview-live").length) setTimeout(() => performance.mark("oclaw:overview-live"));
      return draw();
    },

    async tasks(arg, q) {
      if (arg) return taskDetail(arg);
      const params = new URLSearchParams();
      for (const k of ["status", "bot", "cursor"]) if (q.get(k)) params.set(k, q.get(k));
      params.set("limit", "50");
      const page = await api("/v1/tasks?" + params);
      const status = h("select", { id: "f-status" }, ["", "queued", "scheduled", "running", "waiting", "succeeded", "failed", "dead", "cancelled"].map((s) => h("option", { value: s, selected: q.get("status") === s }, s || t("all"))));
      const bot = h("input", { id: "f-bot", value: q.get("bot") || "", placeholder: t("bot") });
      const go = (cursor) => { const p = new URLSearchParams(); if (status.value) p.set("status", status.value); if (bot.value) p.set("bot", bot.value); if (cursor) p.set("cursor", cursor); location.hash = "#/tasks?" + p; };
      const dead = page.items.filter((x) => x.status === "dead" || x.status === "failed");
      if (!q.get("cursor")) live = () => { if (route().page === "tasks" && !route().arg) render(); };
      return [
        h("h1", {}, t("tasks")),
        h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); go(null); } },
          h("label", { for: "f-status" }, t("status")), status, h("label", { for: "f-bot", class: "sr" }, t("bot")), bot, h("button", { type: "submit" }, t("filter")),
          can("operator") && dead.length ? h("button", { type: "button", onclick: () => act(t("redrive"), () => Promise.all(dead.map((x) => api(`/v1/tasks/${x.id}/retry`, { method: "POST" })))) }, t("redrive")) : null),
        table(["id", "bot", "status", "queue", "created", "attempts"], page.items.map((x) => [h("a", { href: "#/tasks/" + x.id }, x.id), x.bot, badge(x.status), x.queue, when(x.created_at), `${x.attempts}/${x.max_attempts}`])),
        h("div", { class: "row" }, q.get("cursor") ? h("button", { type: "button", onclick: () => go(null) }, t("first")) : null,
          page.next_cursor ? h("button", { type: "button", id: "next-page", onclick: () => go(page.next_cursor) }, t("next")) : null),
      ];
    },

    async bots(arg) {
      if (arg) return botDetail(arg);
      const bots = await api("/v1/bots");
      return [h("h1", {}, t("bots")), table(["name", "description", "queue", "triggers"], bots.items.map((b) => [
        h("a", { href: "#/bots/" + encodeURIComponent(b.name) }, b.name), b.description || "", b.queue, b.triggers.map((x) => Object.keys(x)[0]).join(", ")]))];
    },

    async conversations(arg) {
      if (arg) return conversation(arg);
      const list = await api("/v1/conversations");
      live = () => { if (route().page === "conversations" && !route().arg) render(); };
      return [h("h1", {}, t("handed_off")), table(["bot", "user", "question", "state", "agent", "at"], list.items.map((c) => [
        c.bot, c.user || c.conversation, h("a", { href: "#/conversations/" + c.id }, c.question || "(…)"), badge(c.state), c.agent || "", when(c.updated_at)]))];
    },

    async approvals() {
      const list = await api("/v1/approvals?status=pending");
      live = () => { if (route().page === "approvals") render(); };
      return [h("h1", {}, t("approvals")), table(["message", "bot", "created", ""], list.items.map((a) => {
        const comment = h("input", { "aria-label": t("comment"), placeholder: t("comment") });
        // A stored or OIDC token decides as itself; a configured or anonymous admin names itself.
        const decide = (how) => act(t(how), () => api(`/v1/approvals/${a.id}/${how}`, { method: "POST",
          body: Object.assign(me.identity ? {} : { by: me.actor }, comment.value ? { comment: comment.value } : {}) }));
        return [(a.detail && a.detail.message) || "", a.bot || "", when(a.created_at),
          can("operator") ? h("div", { class: "row" }, comment, h("button", { type: "button", class: "primary", onclick: () => decide("approve") }, t("approve")),
            h("button", { type: "button", class: "danger", onclick: () => decide("reject") }, t("reject"))) : ""];
      }))];
    },

    async knowledge() {
      const list = await api("/v1/kb");
      const out = h("div", { id: "kb-results" });
      const names = list.items.map((c) => c.name);
      const pick = h("select", { id: "kb-pick", "aria-label": t("collections") }, names.map((n) => h("option", { value: n }, n)));
      const q = h("input", { id: "kb-q", "aria-label": t("query"), placeholder: t("query") });
      const search = async (e) => {
        e.preventDefault();
        try {
          const r = await api(`/v1/kb/${encodeURIComponent(pick.value)}/search?k=5&q=${encodeURIComponent(q.value)}`);
          out.replaceChildren(table(["score", "title", "text"], (r.hits || []).map((x) => [x.score.toFixed(3), x.title || x.document, x.text])));
        } catch (err) { toast(err.message); }
      };
      const name = h("input", { "aria-label": t("name"), placeholder: t("name") });
      const title = h("input", { "aria-label": t("title"), placeholder: t("title") });
      const text = h("textarea", { "aria-label": t("text"), placeholder: t("text") });
      // A local file is read in the browser and sent as the document's text.
      const file = h("input", { type: "file", id: "kb-file", accept: ".md,.markdown,.txt,.html,.htm,text/*", onchange: async (e) => {
        const f = e.target.files[0];
        if (!f) return;
        text.value = await f.text();
        if (!title.value) title.value = f.name;
      } });
      return [h("h1", {}, t("knowledge")),
        table(["name", "documents", "chunks"], list.items.map((c) => [c.name, c.documents ?? "", c.chunks ?? ""])),
        can("developer") ? h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); act(t("create"), () => api("/v1/kb", { method: "POST", body: { name: name.value } })); } }, name, h("button", { type: "submit" }, t("create"))) : null,
        names.length ? [h("h2", {}, t("search")), h("form", { class: "row", onsubmit: search }, pick, q, h("button", { type: "submit", class: "primary" }, t("search"))), out] : null,
        names.length && can("developer") ? [h("h2", {}, t("add_doc")), h("form", { onsubmit: (e) => { e.preventDefault(); act(t("add_doc"), () => api(`/v1/kb/${encodeURIComponent(pick.value)}/documents`, { method: "POST", body: { title: title.value || undefined, text: text.value } })); } },
          h("div", { class: "row" }, title, h("label", { for: "kb-file" }, t("file")), file), text, h("button", { type: "submit" }, t("upload")))] : null];
    },

    async audit(_, q) {
      const params = new URLSearchParams({ limit: "100" });
      if (q.get("cursor")) params.set("cursor", q.get("cursor"));
      const list = await api("/v1/audit?" + params);
      return [h("h1", {}, t("audit")), table(["at", "actor", "tenant", "action", "target", "result"], list.items.map((a) => [when(a.at), a.actor, a.tenant || "", a.action, a.target || "", a.result])),
        list.next_cursor ? h("a", { href: "#/audit?cursor=" + list.next_cursor }, t("next")) : null];
    },

    async chat(arg) {
      const bots = (await api("/v1/bots")).items.filter((b) => b.triggers.some((x) => "websocket" in x));
      if (!bots.length) return [h("h1", {}, t("chat")), h("p", {}, t("no_ws_bots"))];
      const name = arg || (bots.find((b) => b.name === "support-assistant") || bots[0]).name;
      const box = h("div", { id: "chat-box" });
      const pick = h("select", { id: "chat-bot", onchange: (e) => { location.hash = "#/chat/" + e.target.value; } }, bots.map((b) => h("option", { value: b.name, selected: b.name === name }, b.name)));
      await loadWidget();
      chatWidget = window.OclawWebChat.mount(box, { bot: name, token, base: location.origin, inline: true, lang });
      return [h("h1", {}, t("chat")), h("div", { class: "row" }, h("label", { for: "chat-bot" }, t("chat_bot")), pick), box];
    },
  };

  function loadWidget() {
    if (window.OclawWebChat) return Promise.resolve();
    return new Promise((ok, fail) => { const s = h("script", { src: "webchat.js" }); s.onload = ok; s.onerror = fail; document.head.append(s); });
  }

  async function taskDetail(id) {
    const task = await api("/v1/tasks/" + encodeURIComponent(id));
    let bot = null;
    try { bot = await api("/v1/bots/" + encodeURIComponent(task.bot)); } catch (_) { /* not loaded any more */ }
    const waits = task.waits || [];
    if (!["succeeded", "failed", "dead", "cancelled"].includes(task.status)) live = () => { if (route().arg === id) render(); };
    const from = h("select", { id: "from-step", "aria-label": t("step") }, (bot ? bot.steps : []).map((s) => h("option", { value: s.id }, s.id)));
    const actions = can("operator") ? h("div", { class: "row" },
      ["queued", "scheduled", "running", "waiting"].includes(task.status) ? h("button", { type: "button", class: "danger", onclick: () => act(t("cancel"), () => api(`/v1/tasks/${id}/cancel`, { method: "POST" })) }, t("cancel")) : null,
      ["failed", "dead", "cancelled"].includes(task.status) ? h("button", { type: "button", id: "retry", class: "primary", onclick: () => act(t("retry"), () => api(`/v1/tasks/${id}/retry`, { method: "POST" })) }, t("retry")) : null,
      bot && bot.steps.length && ["succeeded", "failed", "dead", "cancelled"].includes(task.status) ? [from, h("button", { type: "button", onclick: () => act(t("retry_from"), () => api(`/v1/tasks/${id}/retry?from_step=${encodeURIComponent(from.value)}`, { method: "POST" })) }, t("retry_from"))] : null) : null;
    const cps = task.checkpoints || [];
    let prev = task.started_at ? new Date(task.started_at) : null;
    return [
      h("h1", {}, t("tasks"), " ", task.id, " ", badge(task.status)),
      table(["bot", "queue", "attempts", "created", "trace", "worker"], [[h("a", { href: "#/bots/" + task.bot }, task.bot), task.queue, `${task.attempts}/${task.max_attempts}`, when(task.created_at), task.trace_id, task.worker || ""]]),
      task.parent ? h("p", {}, t("parent") + ": ", h("a", { href: "#/tasks/" + task.parent }, task.parent)) : null,
      actions,
      task.error ? [h("h2", {}, t("error")), h("p", { class: "s-failed", id: "task-error" }, task.error.code + ": " + task.error.message)] : null,
      waits.length ? [h("h2", {}, t("waits_for")), table(["kind", "step", "status", "message", "deadline"], waits.map((w) => [w.kind, w.step, badge(w.status),
        (w.detail && w.detail.message) || [w.name, w.key].filter(Boolean).join(" · "), when(w.deadline)]))] : null,
      h("h2", {}, t("steps")),
      table(["step", "at", "checkpoint"], cps.map((c) => { const at = new Date(c.at); const took = prev ? ((at - prev) / 1000).toFixed(3) + " s" : ""; prev = at; return [c.step, when(c.at) + (took ? " (+" + took + ")" : ""), json(c.output)]; })),
      h("h2", {}, t("input")), json(task.input),
      task.output !== null && task.output !== undefined ? [h("h2", {}, t("output")), json(task.output)] : null,
    ];
  }

  async function botDetail(name) {
    const bot = await api("/v1/bots/" + encodeURIComponent(name));
    const runs = await api("/v1/tasks?limit=20&bot=" + encodeURIComponent(name));
    const input = h("textarea", { id: "run-input", "aria-label": t("run_input") }, '{"text": "hello"}');
    const run = async (e) => {
      e.preventDefault();
      let parsed;
      try { parsed = JSON.parse(input.value || "{}"); } catch (err) { toast(t("input") + ": " + err.message); return; }
      try { const task = await api("/v1/tasks", { method: "POST", body: { bot: name, input: parsed } }); location.hash = "#/tasks/" + task.id; } catch (err) { toast(err.message); }
    };
    return [
      h("h1", {}, bot.name), h("p", {}, bot.description || ""),
      can("operator") ? [h("h2", {}, t("run_input")), h("form", { onsubmit: run }, input, h("button", { type: "submit", class: "primary", id: "run" }, t("run")))] : null,
      h("h2", {}, t("recent")),
      table(["id", "status", "created"], runs.items.map((x) => [h("a", { href: "#/tasks/" + x.id }, x.id), badge(x.status), when(x.created_at)])),
      h("h2", {}, t("triggers")), json(bot.triggers),
      h("h2", {}, t("definition")), json(bot.spec),
    ];
  }

  async function conversation(id) {
    const c = await api("/v1/conversations/" + id);
    live = () => { if (route().arg === id) render(); };
    const text = h("input", { id: "agent-text", "aria-label": t("reply"), placeholder: t("reply"), autocomplete: "off" });
    const send = (e) => { e.preventDefault(); const v = text.value; act(t("send"), () => api(`/v1/conversations/${id}/messages`, { method: "POST", body: { text: v } })); };
    return [
      h("h1", {}, t("conversations"), " ", badge(c.state)),
      table(["bot", "user", "agent", "at"], [[c.bot, c.user || c.conversation, c.agent || "", when(c.since)]]),
      can("operator") ? h("div", { class: "row" },
        c.state !== "taken" ? h("button", { type: "button", class: "primary", id: "take", onclick: () => act(t("take"), () => api(`/v1/conversations/${id}/take`, { method: "POST" })) }, t("take")) : null,
        c.state === "taken" ? h("button", { type: "button", id: "release", onclick: () => act(t("release"), () => api(`/v1/conversations/${id}/release`, { method: "POST" })) }, t("release")) : null) : null,
      h("h2", {}, t("history")),
      h("div", { id: "history", role: "log" }, (c.history || []).map((m) => h("div", { class: "msg " + m.role }, h("span", { class: "by" }, (m.by || t(m.role === "bot" ? "bot" : m.role === "agent" ? "agent" : "user")) + " · " + when(m.at)), m.text || ""))),
      can("operator") && c.state === "taken" ? h("form", { class: "row", onsubmit: send }, text, h("button", { type: "submit", class: "primary", id: "send" }, t("send"))) : null,
    ];
  }

  // --- frame ---
  function route() {
    const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
    const [page, ...rest] = path.split("/");
    return { page: pages[page] ? page : "overview", arg: rest.length ? decodeURIComponent(rest.join("/")) : null, q: new URLSearchParams(query || "") };
  }
  function paint(nodes) {
    const list = [nodes].flat(3).filter((n) => n !== null && n !== undefined && n !== false);
    // A live refresh that changes nothing leaves the page alone (what is typed, where the focus is).
    const probe = document.createElement("div");
    probe.append(...list.map((n) => n.cloneNode(true)));
    if (probe.innerHTML === main.innerHTML) return;
    const focused = document.activeElement && document.activeElement.id;
    const value = focused && document.activeElement.value;
    main.replaceChildren(...list);
    if (focused) { const el = document.getElementById(focused); if (el) { if (value !== undefined && "value" in el) el.value = value; el.focus(); } }
  }
  function drawNav() {
    const nav = document.getElementById("nav");
    const cur = route().page;
    nav.replaceChildren(...Object.keys(pages).map((p) => h("a", { href: "#/" + p, "aria-current": p === cur ? "page" : null }, t(p))));
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.getElementById("signout").textContent = t("signout");
  }
  let rendering = 0;
  let chatWidget = null; // the chat page's widget, closed when the page is left
  async function render() {
    if (chatWidget) { chatWidget.close(); chatWidget = null; }
    if (!me) return signin();
    drawNav();
    const r = route();
    const mine = ++rendering;
    live = null;
    try {
      const out = await pages[r.page](r.arg, r.q);
      if (mine === rendering) {
        paint([me.role === "viewer" ? h("p", { class: "muted", id: "viewer-note" }, t("viewer_note")) : null, out].flat());
        // For `oclaw`'s console benchmark: when each page was first drawn.
        performance.mark("oclaw:" + r.page);
      }
    } catch (e) {
      if (e.status === 401) { signout(); return; }
      if (mine === rendering) paint([h("h1", {}, t(r.page)), h("p", { class: "s-failed", role: "alert" }, e.message)]);
    }
  }
  function signin(message) {
    document.getElementById("nav").replaceChildren();
    const input = h("input", { id: "token", type: "password", autocomplete: "off" });
    main.replaceChildren(h("form", { class: "signin", onsubmit: async (e) => { e.preventDefault(); token = input.value.trim(); await start(true); } },
      h("h1", {}, t("signin")), h("p", { class: "muted" }, t("signin_help")),
      h("label", { for: "token" }, t("token")), input,
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary", id: "signin" }, t("signin"))),
      message ? h("p", { class: "s-failed", role: "alert" }, message) : null));
    input.focus();
  }
  function signout() {
    token = ""; me = null; sessionStorage.removeItem("oclaw.token");
    if (stream) stream.abort();
    document.getElementById("signout").hidden = true;
    document.getElementById("who").textContent = "";
    signin();
  }
  async function start(explicit) {
    if (!token) {
      // Ask for a token unless the node lets its local user in without one.
      try {
        const s = await (await fetch("session.json")).json();
        if (s.token_required) return signin(explicit ? t("token") + "?" : null);
      } catch (_) { return signin(); }
    }
    try {
      me = await api("/v1/me");
    } catch (e) {
      me = null;
      return signin(explicit ? e.message : null);
    }
    if (token) sessionStorage.setItem("oclaw.token", token);
    document.getElementById("who").textContent = `${me.identity || me.actor} · ${t("role")}: ${me.role}${me.tenant ? " · " + t("tenant") + ": " + me.tenant : ""}`;
    document.getElementById("signout").hidden = false;
    listen();
    render();
  }
  document.getElementById("signout").addEventListener("click", signout);
  const langSel = document.getElementById("lang");
  langSel.value = lang;
  langSel.addEventListener("change", () => { lang = langSel.value; localStorage.setItem("oclaw.lang", lang); if (me) start(false); else signin(); });
  window.addEventListener("hashchange", () => { render(); main.focus(); });
  start(false);
})();
