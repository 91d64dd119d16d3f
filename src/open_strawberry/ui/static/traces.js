// The trace browser: filter a traces file page by page, open a trace as a conversation.
"use strict";

(() => {
  const { el, setText, fmt } = UI;
  UI.nav("traces");
  const form = document.getElementById("filters");
  const results = document.getElementById("results");
  const more = document.getElementById("more");
  const conversation = document.getElementById("conversation");
  let query = {};          // the filters of the list shown
  let next = null;         // where the list goes on; null at the end of what is indexed
  let scannedTo = 0;
  let indexed = 0;
  let selected = null;

  function filters() {
    const data = new FormData(form);
    const found = {};
    for (const [key, value] of data.entries()) if (value) found[key] = value;
    return found;
  }

  async function facets() {
    const f = await UI.get("/api/traces/facets");
    setText("[data-testid=path]", f.path);
    setText("[data-testid=indexed]", fmt.int(f.indexed));
    const statuses = Object.entries(f.statuses).sort().map(([k, v]) => `${k} ${v}`).join(" · ");
    const grades = f.correct;
    setText("#facet-summary", `${statuses || "none yet"} · correct ${grades.true || 0} · incorrect ` +
      `${grades.false || 0}${f.caught_up ? "" : " · still reading the file…"}`);
    fill(form.elements.status, Object.keys(f.statuses).sort());
    fill(form.elements.model, f.models);
    const list = document.getElementById("problems");
    if (list.children.length !== f.problems.length) {
      list.replaceChildren(...f.problems.map((p) => el("option", { value: p })));
    }
    if (f.unavailable) {  // the file is gone or replaced: say so; the server keeps looking for it
      setText("#facet-summary", `the traces file ${f.unavailable}`);
      UI.connection("lost", "file unavailable");
    } else {
      UI.connection("live", f.caught_up ? "up to date" : "reading…");
    }
    const grew = f.indexed > indexed;
    const shrank = f.indexed < indexed;  // emptied, or indexed again from the start
    indexed = f.indexed;
    if (shrank) await load(false);
    return grew;
  }

  function fill(select, values) {
    const have = new Set([...select.options].map((o) => o.value));
    for (const value of values) if (value && !have.has(value)) select.append(el("option", { value }, value));
  }

  async function load(append) {
    const params = { ...query, start: append ? next : 0 };
    const page = await UI.get("/api/traces", params);
    if (!append) results.replaceChildren();
    for (const item of page.items) results.append(row(item));
    next = page.next;
    scannedTo = page.scanned_to;
    more.classList.toggle("hidden", next === null);
    setText("#scan-note", `${results.children.length} shown · looked at ${fmt.int(scannedTo)} of ${fmt.int(page.indexed)}`);
  }

  function row(item) {
    const correct = item.correct === true ? "yes" : item.correct === false ? "no" : "—";
    return el("tr", {
      class: `clickable${item.index === selected ? " selected" : ""}`, dataset: { index: String(item.index) },
      onclick: () => open(item.index),
    }, el("td", {}, item.line), el("td", { class: "mono" }, item.problem_id), el("td", {}, item.sample),
    el("td", {}, item.error ? `${item.status} (${item.error})` : item.status),
    el("td", { class: item.correct === true ? "ok" : item.correct === false ? "no" : "muted" }, correct),
    el("td", {}, item.turns), el("td", {}, fmt.int(item.input_tokens + item.output_tokens)),
    el("td", { class: "wrap" }, item.final_answer === null ? "—" : item.final_answer));
  }

  async function open(index) {
    selected = index;
    for (const tr of results.children) tr.classList.toggle("selected", tr.dataset.index === String(index));
    const found = await UI.get(`/api/traces/${index}`);
    const facts = document.getElementById("detail-facts");
    conversation.replaceChildren();
    if (found.unreadable) {
      setText("#detail-title", `Line ${found.line}: unreadable`);
      facts.replaceChildren(el("dt", {}, "why"), el("dd", {}, found.unreadable));
      conversation.append(el("pre", { class: "text" }, found.raw));
      return;
    }
    const r = found.record;
    setText("#detail-title", `Line ${found.line} · ${r.problem_id} #${r.sample}`);
    const pairs = [
      ["trace", r.trace_id], ["model", r.model], ["strategy", `${r.strategy} (${r.system_prompt_variant || "—"})`],
      ["status", `${r.status}${r.stop_reason ? ` — ${r.stop_reason}` : ""}`],
      ["final answer", r.final_answer === null ? "—" : r.final_answer], ["ground truth", r.ground_truth],
      ["correct", r.correct === null ? "not graded" : r.correct ? "yes" : "no"],
      ["grader", r.grader ? `${r.grader}: ${r.grade_detail}` : "—"],
      ["tokens", fmt.tokens({ input: r.usage.input_tokens, output: r.usage.output_tokens,
        cache_read: r.usage.cache_read_tokens, cache_write: r.usage.cache_write_tokens,
        reasoning: r.usage.reasoning_tokens })],
      ["time", `${fmt.num(r.finished_at - r.started_at, 2)} s`],
    ];
    if (r.error) pairs.push(["error", `${r.error.type}: ${r.error.message}`]);
    facts.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-testid": `fact-${k.replace(" ", "-")}` }, v)]));
    let assistant = 0;
    r.messages.forEach((m, index) => {
      const item = { index, role: m.role, content: m.content, reasoning: m.reasoning_content };
      if (m.role === "assistant") {
        const t = r.turns[assistant];
        assistant += 1;
        if (t) Object.assign(item, { turn: assistant, kind: t.kind, score: t.verifier_score, finish_reason: t.finish_reason,
          usage: { input: t.usage.input_tokens, output: t.usage.output_tokens, cache_read: t.usage.cache_read_tokens,
            cache_write: t.usage.cache_write_tokens, reasoning: t.usage.reasoning_tokens, estimated: t.usage.estimated },
          timings: t.timings && { ttft_s: t.timings.ttft_s,
            e2e_s: t.timings.e2e_s, attempts: t.timings.attempts } });
      } else if (m.role === "user") {
        const t = r.turns[assistant];
        item.kind = t ? t.kind : "";
      }
      conversation.append(UI.message(item));
    });
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); query = filters(); load(false).catch(fail); });
  form.addEventListener("reset", () => setTimeout(() => { query = {}; load(false).catch(fail); }, 0));
  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", () => { query = filters(); load(false).catch(fail); });
  }
  more.addEventListener("click", () => load(true).catch(fail));
  const nudges = document.getElementById("show-nudges");
  nudges.addEventListener("change", () => conversation.classList.toggle("hide-nudges", !nudges.checked));

  function fail(error) { UI.connection("lost", String(error.message || error)); }

  // A growing file: new lines are indexed by the server; the list shows them when it has
  // reached the end of what was indexed.
  async function poll() {
    try {
      const grew = await facets();
      if (grew && next === null) {
        const page = await UI.get("/api/traces", { ...query, start: scannedTo });
        for (const item of page.items) results.append(row(item));
        next = page.next;
        scannedTo = page.scanned_to;
        more.classList.toggle("hidden", next === null);
        setText("#scan-note", `${results.children.length} shown · looked at ${fmt.int(scannedTo)} of ${fmt.int(page.indexed)}`);
      }
    } catch (error) { fail(error); }
    setTimeout(poll, 2000);
  }

  facets().then(() => load(false)).then(() => setTimeout(poll, 2000)).catch(fail);
})();
