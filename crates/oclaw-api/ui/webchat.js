// OpenClaw WebChat: a chat window for a bot with a `websocket` trigger, for any page.
//
//   <script src="https://NODE/ui/webchat.js" data-bot="support-assistant"
//           data-token="oct_..." data-title="Support"></script>
//
// Replies stream in as the model writes them; messages typed while the connection is down wait
// in an outbox ("waiting to reconnect") and go out when it is back; the session id is kept in
// the browser, so a reload or a reconnect resumes the same conversation, and a reply that came
// while the socket was down is fetched from its task. Text is only ever set as text.
"use strict";
(function () {
  const script = document.currentScript;
  const L = {
    en: { placeholder: "Type a message…", send: "Send", offline: "Waiting to reconnect…", online: "Connected",
      joined: "An agent joined the conversation.", left: "The agent handed the conversation back.", open: "Chat", close: "Close", error: "Error" },
    zh: { placeholder: "输入消息…", send: "发送", offline: "等待重新连接…", online: "已连接",
      joined: "人工坐席已加入会话。", left: "坐席已将会话交还机器人。", open: "聊天", close: "关闭", error: "错误" },
  };
  const CSS = `.ocw{font:14px/1.4 system-ui,sans-serif;color:#1b1f24;border:1px solid #d0d7de;border-radius:10px;background:#fff;display:flex;flex-direction:column;width:340px;height:440px}
.ocw-float{position:fixed;right:20px;bottom:70px;z-index:2147483000;box-shadow:0 6px 24px rgba(0,0,0,.18)}
.ocw-inline{width:100%;max-width:560px}
.ocw header{padding:8px 12px;font-weight:600;border-bottom:1px solid #d0d7de;display:flex;justify-content:space-between;align-items:center}
.ocw .ocw-state{font-weight:400;font-size:12px;color:#57606a}
.ocw .ocw-log{flex:1;overflow:auto;padding:8px}
.ocw .ocw-m{margin:4px 0;padding:6px 10px;border-radius:8px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}
.ocw .ocw-user{background:#0b5cad;color:#fff;margin-left:auto}
.ocw .ocw-bot{background:#f0f2f5}
.ocw .ocw-agent{background:#e6f4ea}
.ocw .ocw-note{color:#57606a;font-size:12px;text-align:center}
.ocw .ocw-pending{opacity:.6}
.ocw form{display:flex;gap:6px;padding:8px;border-top:1px solid #d0d7de}
.ocw input{flex:1;padding:6px;border:1px solid #8c959f;border-radius:6px;font:inherit}
.ocw button{padding:6px 12px;border:1px solid #0b5cad;background:#0b5cad;color:#fff;border-radius:6px;font:inherit;cursor:pointer}
.ocw-launch{position:fixed;right:20px;bottom:20px;z-index:2147483000;padding:10px 16px;border-radius:20px;border:0;background:#0b5cad;color:#fff;font:14px system-ui,sans-serif;cursor:pointer}`;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // The widget's style, once per page: a constructed style sheet where the browser has them
  // (a page's Content-Security-Policy without 'unsafe-inline' styles allows it, as the console's
  // does), else a <style> element.
  function style() {
    if (window.__ocwStyled) return;
    window.__ocwStyled = true;
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    } catch (_) {
      const st = el("style"); st.textContent = CSS; document.head.append(st);
    }
  }

  function mount(target, opts) {
    style();
    const lang = opts.lang || ((navigator.language || "").startsWith("zh") ? "zh" : "en");
    const t = (k) => (L[lang] || L.en)[k];
    const base = (opts.base || location.origin).replace(/\/$/, "");
    const keyName = "oclaw.webchat." + opts.bot;
    let session = localStorage.getItem(keyName) || "";
    const box = el("section", "ocw " + (opts.inline ? "ocw-inline" : "ocw-float"));
    box.setAttribute("aria-label", opts.title || opts.bot);
    const head = el("header"); head.append(el("span", "", opts.title || opts.bot));
    const state = el("span", "ocw-state", t("offline")); state.setAttribute("role", "status"); head.append(state);
    const log = el("div", "ocw-log"); log.setAttribute("role", "log"); log.setAttribute("aria-live", "polite");
    const form = el("form");
    const input = el("input"); input.placeholder = t("placeholder"); input.setAttribute("aria-label", t("placeholder")); input.autocomplete = "off";
    const send = el("button", "", t("send")); send.type = "submit";
    form.append(input, send);
    box.append(head, log, form);
    target.append(box);

    let ws = null, open = false, backoff = 500, seq = 0, deltas = 0, closed = false;
    const outbox = [];            // messages not yet sent: {id, text, node}
    const waiting = new Map();    // id -> {node, task, text}: sent, reply not yet shown
    function line(cls, text) {
      const m = el("div", "ocw-m " + cls, text);
      log.append(m); log.scrollTop = log.scrollHeight;
      return m;
    }
    function reply(id, text, cls) {
      const w = waiting.get(id);
      let node = w && w.node;
      if (!node) node = line(cls || "ocw-bot", "");
      node.className = "ocw-m " + (cls || "ocw-bot");
      node.textContent = text;
      waiting.delete(id);
      log.scrollTop = log.scrollHeight;
    }
    function flush() {
      while (open && outbox.length) {
        const m = outbox.shift();
        m.node.classList.remove("ocw-pending");
        ws.send(JSON.stringify({ type: "message", id: m.id, text: m.text }));
        waiting.set(m.id, { node: null, task: null, text: "" });
      }
    }
    // A reply that came while the socket was down: read it from its task.
    async function recover(id, task) {
      const headers = opts.token ? { authorization: "Bearer " + opts.token } : {};
      for (let i = 0; i < 60 && waiting.has(id); i++) {
        try {
          const r = await fetch(`${base}/v1/tasks/${task}`, { headers });
          if (r.ok) {
            const tk = await r.json();
            if (tk.status === "succeeded") {
              const o = tk.output;
              if (o && o.held) { waiting.delete(id); return; }
              reply(id, typeof o === "string" ? o : (o && o.text) || JSON.stringify(o));
              return;
            }
            if (["failed", "dead", "cancelled"].includes(tk.status)) { reply(id, t("error") + ": " + ((tk.error && tk.error.message) || tk.status), "ocw-note"); return; }
          }
        } catch (_) { /* still offline */ }
        await new Promise((ok) => setTimeout(ok, 1000));
      }
    }
    function connect() {
      const url = new URL(base + "/v1/ws");
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("bot", opts.bot);
      if (session) url.searchParams.set("session", session);
      if (opts.user) url.searchParams.set("user", opts.user);
      const protocols = opts.token ? ["oclaw", "oclaw.bearer." + opts.token] : ["oclaw"];
      ws = new WebSocket(url, protocols);
      ws.onopen = () => {
        open = true; backoff = 500; state.textContent = t("online");
        for (const [id, w] of waiting) if (w.task) recover(id, w.task);
        flush();
      };
      ws.onmessage = (ev) => {
        let f; try { f = JSON.parse(ev.data); } catch (_) { return; }
        if (f.type === "session") { session = f.session; localStorage.setItem(keyName, session); }
        else if (f.type === "ack") { const w = waiting.get(f.id); if (w) w.task = f.task_id; }
        else if (f.type === "delta") {
          const w = waiting.get(f.id);
          deltas++;
          if (w) { if (!w.node) w.node = line("ocw-bot", ""); w.text += f.text; w.node.textContent = w.text; log.scrollTop = log.scrollHeight; }
        }
        else if (f.type === "reply") reply(f.id, f.text || (f.data ? JSON.stringify(f.data) : ""));
        else if (f.type === "approval") reply(f.id, f.text);
        else if (f.type === "held") waiting.delete(f.id);
        else if (f.type === "message" && f.role === "agent") line("ocw-agent", f.text);
        else if (f.type === "agent") line("ocw-note", f.event === "joined" ? t("joined") : t("left"));
        else if (f.type === "error") reply(f.id, t("error") + ": " + ((f.error && f.error.message) || ""), "ocw-note");
      };
      ws.onclose = () => {
        open = false; state.textContent = t("offline");
        if (closed) return;
        setTimeout(connect, backoff); backoff = Math.min(backoff * 2, 8000);
      };
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      const node = line("ocw-user ocw-pending", text);
      outbox.push({ id: "m" + Date.now().toString(36) + "-" + (++seq), text, node });
      if (!open) state.textContent = t("offline");
      flush();
    });
    connect();
    return { element: box, get session() { return session; }, get connected() { return open; },
      get deltas() { return deltas; }, get outbox() { return outbox.length; },
      // Ends the session's socket for good (the console's chat page when it is left).
      close() { closed = true; if (ws) ws.close(); box.remove(); } };
  }

  window.OclawWebChat = { mount };

  // Embedded with data-bot: a launcher button that opens the window.
  if (script && script.dataset.bot) {
    const ds = script.dataset;
    const base = new URL(script.src, location.href).origin;
    const start = () => {
      const holder = document.createElement("div");
      document.body.append(holder);
      const lang = ds.lang;
      const t = (k) => (L[lang] || ((navigator.language || "").startsWith("zh") ? L.zh : L.en))[k];
      let chat = null;
      const launch = el("button", "ocw-launch", ds.title || t("open"));
      launch.type = "button";
      launch.setAttribute("aria-expanded", "false");
      launch.addEventListener("click", () => {
        if (!chat) {
          chat = mount(holder, { bot: ds.bot, token: ds.token, title: ds.title, user: ds.user, base, lang });
          window.OclawWebChat.current = chat;
        } else {
          chat.element.hidden = !chat.element.hidden;
        }
        launch.setAttribute("aria-expanded", String(!chat.element.hidden));
        if (!chat.element.hidden) chat.element.querySelector("input").focus();
      });
      document.body.append(launch);
    };
    if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
  }
})();
