// The playground: one trace at a time, streamed turn by turn; continue, stop, reset, save.
//
// The conversation on the page is keyed by message index (and the reply streaming now by its
// turn): every update replaces the element it is about, and a "session" message (sent first
// on every connection) redraws the whole trace, so no stale copy of a turn is ever left.
"use strict";

(() => {
  const { el, setText, fmt } = UI;
  UI.nav("playground");
  const form = document.getElementById("settings");
  const box = document.getElementById("conversation");
  const banner = document.getElementById("banner");
  const buttons = Object.fromEntries(["start", "stop", "continue", "reset", "save"].map((id) => [id, document.getElementById(id)]));
  let catalog = null;
  let session = null;   // {id, status}
  let source = null;

  function refreshButtons() {
    const running = session && session.status === "running";
    buttons.start.disabled = Boolean(running);
    buttons.stop.disabled = !running;
    buttons.continue.disabled = !session || running;
    buttons.reset.disabled = !session;
    buttons.save.disabled = !session || running || !box.querySelector(".msg.assistant:not(.streaming)");
  }

  function show(kind, text) {
    banner.className = `banner ${kind}`;
    banner.textContent = text;
  }

  function hideBanner() { banner.className = "banner hidden"; banner.textContent = ""; }

  async function setup() {
    catalog = await UI.get("/api/playground");
    const d = catalog.defaults;
    form.elements.model.value = d.model;
    for (const s of catalog.strategies) form.elements.strategy.append(el("option", { value: s }, s));
    for (const g of catalog.graders) form.elements.grader.append(el("option", { value: g }, g));
    form.elements.strategy.value = d.strategy;
    form.elements.grader.value = d.grader;
    form.elements.final_every.value = d.final_every;
    form.elements.verify_every.value = d.verify_every;
    form.elements.max_turns.value = d.max_turns;
    form.elements.problem_id.append(...catalog.problems.map((p) => el("option", { value: p.id }, `${p.id}: ${p.prompt.slice(0, 70)}`)),
      el("option", { value: "" }, "— your own problem —"));
    form.elements.problem_id.addEventListener("change", showProblem);
    showProblem();
    setText("#save-note", `saves append to ${catalog.save_to}`);
    refreshButtons();
  }

  function showProblem() {
    const id = form.elements.problem_id.value;
    document.getElementById("own").classList.toggle("hidden", Boolean(id));
    const problem = catalog.problems.find((p) => p.id === id);
    setText("#problem-text", problem ? `${problem.prompt}\n\nanswer: ${problem.answer}` : "");
  }

  function settings() {
    const f = form.elements;
    const number = (name) => Number.parseInt(f[name].value, 10);
    const found = {
      model: f.model.value.trim(), strategy: f.strategy.value, final_every: number("final_every"),
      verify_every: number("verify_every"), max_turns: number("max_turns"), grader: f.grader.value,
      verifier_model: f.verifier_model.value.trim() || null,
    };
    if (f.problem_id.value) found.problem_id = f.problem_id.value;
    else Object.assign(found, { prompt: f.prompt.value, answer: f.answer.value });
    return found;
  }

  // ---------------------------------------------------------------- drawing the trace

  function place(node, index) {
    node.dataset.index = String(index);
    const old = box.querySelector(`[data-index="${index}"]`);
    if (old) { old.replaceWith(node); return; }
    const after = [...box.children].find((c) => c.dataset.index !== undefined && Number(c.dataset.index) > index);
    if (after) box.insertBefore(node, after); else box.insertBefore(node, box.querySelector(".streaming"));
  }

  function streaming(turn, kind) {
    let node = box.querySelector(".msg.streaming");
    if (node && node.dataset.turn !== String(turn)) { node.remove(); node = null; }
    if (!node) {
      const text = document.createTextNode("");
      node = el("div", { class: "msg assistant streaming", dataset: { turn: String(turn) } },
        el("div", { class: "head" }, el("span", { class: "role" }, "assistant"), el("span", {}, `turn ${turn}`),
          el("span", {}, kind || "")),
        el("pre", { class: "text" }, text), el("div", { class: "tokens" }, "streaming…"));
      node.textNode = text;
      box.append(node);
    }
    return node;
  }

  function dropStreaming() { for (const n of box.querySelectorAll(".msg.streaming")) n.remove(); }

  function status(s) {
    session.status = s.status;
    setText("[data-testid=status]", s.status === "running" ? "running…" : s.status);
    if (s.current === null && s.status !== "running") dropStreaming();
    if (s.error) show("bad", s.error);
    else if (s.verdict) {
      const v = s.verdict;
      const grade = v.correct === null ? "not graded" : v.correct ? "correct" : "incorrect";
      show(v.correct === false ? "bad" : "good", `${v.status}: ${v.final_answer === null ? "no final answer" : v.final_answer}` +
        ` · ${grade}${v.stop_reason ? ` · ${v.stop_reason}` : ""}`);
    } else if (s.status === "stopped") show("info", "stopped: continue to go on, or save it as it is");
    else hideBanner();
    if (s.saved) setText("#save-note", `saved to ${s.saved}`);
    refreshButtons();
  }

  function redraw(snapshot) {
    box.replaceChildren();
    for (const m of snapshot.messages) place(UI.message(m), m.index);
    if (snapshot.current) {
      const node = streaming(snapshot.current.turn, snapshot.current.kind);
      node.textNode.data = snapshot.current.text;
      if (snapshot.current.reasoning) UI.streamThinking(node, snapshot.current.reasoning, true);
    }
    status(snapshot);
  }

  function connect(id) {
    if (source) source.close();
    source = new EventSource(UI.url(`/api/playground/sessions/${id}/stream`));
    const stream = source;
    stream.addEventListener("open", () => UI.connection("live", "live"));
    stream.addEventListener("session", (e) => redraw(JSON.parse(e.data)));
    stream.addEventListener("prompt", (e) => { const m = JSON.parse(e.data); place(UI.message(m), m.index); });
    stream.addEventListener("turn_start", (e) => { const t = JSON.parse(e.data); streaming(t.turn, t.kind); });
    stream.addEventListener("delta", (e) => { const d = JSON.parse(e.data); streaming(d.turn).textNode.appendData(d.text); });
    stream.addEventListener("thinking", (e) => { const d = JSON.parse(e.data); UI.streamThinking(streaming(d.turn), d.text); });
    stream.addEventListener("turn_end", (e) => {
      const m = JSON.parse(e.data);
      dropStreaming();
      place(UI.message(m), m.index);
      refreshButtons();
    });
    stream.addEventListener("score", (e) => {
      const s = JSON.parse(e.data);
      const node = box.querySelector(`.msg.assistant[data-turn="${s.turn}"]:not(.streaming)`);
      if (node && s.score !== null) {
        const tag = node.querySelector("[data-testid=score]") || node.querySelector(".head").appendChild(el("span", { "data-testid": "score" }));
        tag.textContent = `verifier score ${Number(s.score).toFixed(2)}`;
      }
    });
    stream.addEventListener("status", (e) => status(JSON.parse(e.data)));
    stream.addEventListener("reset", () => stream.close());
    stream.addEventListener("error", () => {
      if (stream !== source) return;
      if (stream.readyState === EventSource.CLOSED) UI.connection("lost", "disconnected");
      else UI.connection("lost", "reconnecting…");
    });
  }

  async function act(action) {
    try {
      await UI.post(`/api/playground/sessions/${session.id}/${action}`);
    } catch (error) { show("bad", error.message); }
  }

  buttons.start.addEventListener("click", async () => {
    try {
      hideBanner();
      buttons.start.disabled = true;
      const started = await UI.post("/api/playground/sessions", settings());
      session = { id: started.id, status: "running" };
      box.replaceChildren();
      setText("#save-note", `saves append to ${catalog.save_to}`);
      connect(started.id);
    } catch (error) {
      show("bad", error.message);
    }
    refreshButtons();
  });
  buttons.stop.addEventListener("click", () => act("stop"));
  buttons.continue.addEventListener("click", () => act("continue"));
  buttons.save.addEventListener("click", async () => {
    try {
      const saved = await UI.post(`/api/playground/sessions/${session.id}/save`);
      setText("#save-note", `saved ${saved.trace_id} to ${saved.path}`);
    } catch (error) { show("bad", error.message); }
  });
  buttons.reset.addEventListener("click", async () => {
    const id = session.id;
    if (source) source.close();
    source = null;
    session = null;
    box.replaceChildren();
    hideBanner();
    setText("[data-testid=status]", "not started");
    refreshButtons();
    try { await UI.post(`/api/playground/sessions/${id}/reset`); } catch (error) { show("bad", error.message); }
  });
  const nudges = document.getElementById("show-nudges");
  nudges.addEventListener("change", () => box.classList.toggle("hide-nudges", !nudges.checked));

  setup().catch((error) => show("bad", error.message));
})();
