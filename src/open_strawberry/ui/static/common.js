// open-strawberry UI: what every page shares. Plain JavaScript, no build step.
//
// Safety: model text only ever enters the page as text (text nodes, textContent), never as
// HTML; el() below turns every string child into a text node. The server's Content-Security-
// Policy allows no inline script besides.
"use strict";

const UI = (() => {
  const config = JSON.parse(document.querySelector('meta[name="ui-config"]').content);

  // A same-origin path with the token (and any non-empty params) in its query string.
  function url(path, params) {
    const query = new URLSearchParams({ token: config.token });
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    return `${path}?${query}`;
  }

  async function reply(response) {
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
    return body;
  }

  async function get(path, params) {
    return reply(await fetch(url(path, params), { headers: { "X-UI-Token": config.token } }));
  }

  // State-changing requests: the token in a header, and the browser adds the page's Origin.
  async function post(path, data) {
    return reply(await fetch(path, {
      method: "POST",
      headers: { "X-UI-Token": config.token, "Content-Type": "application/json" },
      body: JSON.stringify(data || {}),
    }));
  }

  // An element: props set attributes (class, dataset, on<event>), children are nodes or text.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(target, text) {
    const node = typeof target === "string" ? document.querySelector(target) : target;
    if (node) node.textContent = text === undefined || text === null ? "—" : String(text);
  }

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const fmt = {
    int: (n) => (n === null || n === undefined ? "—" : integer.format(n)),
    num: (n, digits = 1) => (n === null || n === undefined ? "—" : Number(n).toFixed(digits)),
    pct: (x) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(1)}%`),
    ms: (s) => (s === null || s === undefined ? "—" : `${integer.format(s * 1000)} ms`),
    money: (x) => (x === null || x === undefined ? "—" : `$${Number(x).toFixed(x < 1 ? 4 : 2)}`),
    duration: (s) => {
      if (s === null || s === undefined || !isFinite(s)) return "—";
      s = Math.round(s);
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
      return h ? `${h}h ${m}m` : m ? `${m}m ${r}s` : `${r}s`;
    },
    tokens: (u) => (u ? `in ${integer.format(u.input)} · out ${integer.format(u.output)}` +
      (u.reasoning === null || u.reasoning === undefined ? "" : ` (thinking ${integer.format(u.reasoning)})`) +
      ` · cache read ${integer.format(u.cache_read)} · cache write ${integer.format(u.cache_write)}` : "—"),
  };

  function connection(state, text) {
    const pill = document.getElementById("connection");
    if (!pill) return;
    pill.className = `pill ${state}`;
    pill.textContent = text;
  }

  // The links between the pages this server serves.
  function nav(current) {
    const box = document.getElementById("nav");
    if (!box) return;
    const names = { monitor: "Run monitor", traces: "Traces", playground: "Playground" };
    for (const page of config.pages) {
      box.append(el("a", { href: url(`/${page}`), class: page === current ? "current" : "" }, names[page] || page));
    }
    document.title = `${names[current] || current} · ${config.title}`;
  }

  // A reply's thinking, folded under it: a <details>, closed until opened, its text as text;
  // the summary says its tokens (usage.reasoning) where they are known.
  function thinkingLabel(usage) {
    return usage && usage.reasoning !== null && usage.reasoning !== undefined
      ? `thinking · ${integer.format(usage.reasoning)} tokens${usage.estimated ? " (estimated)" : ""}` : "thinking";
  }

  function thinking(text, usage) {
    const body = document.createTextNode(text || "");
    const node = el("details", { class: "thinking", "data-testid": "thinking" },
      el("summary", {}, thinkingLabel(usage)), el("div", { class: "text thinking-text" }, body));
    node.textNode = body;
    return node;
  }

  // The thinking of a reply streaming now: made on its first piece, above the answer; a piece
  // is added (or, with replace, the whole thinking so far is set, and usage, once the turn
  // has ended, puts its tokens in the summary).
  function streamThinking(reply, text, replace, usage) {
    let box = reply.querySelector(":scope > details.thinking");
    if (!box) {
      box = thinking("");
      reply.insertBefore(box, reply.querySelector(":scope > .text"));
    }
    if (replace) box.textNode.data = text; else box.textNode.appendData(text);
    if (usage) box.querySelector("summary").textContent = thinkingLabel(usage);
    return box;
  }

  // One message of a conversation: role, kind, per-turn figures, its thinking folded, and the
  // text as text.
  function message(item) {
    const kind = item.kind || "";
    const classes = ["msg", item.role];
    if (item.role === "user" && (kind === "nudge" || kind === "final_request")) classes.push("nudge");
    const head = el("div", { class: "head" }, el("span", { class: "role" }, item.role));
    if (item.turn) head.append(el("span", {}, `turn ${item.turn}`));
    if (kind) head.append(el("span", { "data-testid": "kind" }, kind));
    if (item.score !== null && item.score !== undefined) {
      head.append(el("span", { "data-testid": "score" }, `verifier score ${Number(item.score).toFixed(2)}`));
    }
    if (item.timings) {
      const t = item.timings;
      head.append(el("span", {}, `ttft ${fmt.ms(t.ttft_s)} · ${fmt.ms(t.e2e_s)}` +
        (t.attempts > 1 ? ` · ${t.attempts} attempts` : "")));
    }
    if (item.finish_reason && item.finish_reason !== "stop") head.append(el("span", {}, `finish: ${item.finish_reason}`));
    const node = el("div", { class: classes.join(" "), dataset: { role: item.role, turn: item.turn ? String(item.turn) : "" } }, head,
      item.reasoning ? thinking(item.reasoning, item.usage) : null, el("pre", { class: "text" }, item.content));
    if (item.usage) node.append(el("div", { class: "tokens", "data-testid": "turn-tokens" }, fmt.tokens(item.usage)));
    return node;
  }

  return { config, url, get, post, el, setText, fmt, connection, nav, message, thinking, streamThinking };
})();
