// The run monitor: the state every tick (server-sent events), and one trace token by token.
"use strict";

(() => {
  const { el, setText, fmt } = UI;
  UI.nav("monitor");
  let watched = null;       // trace id
  let watchSource = null;   // its EventSource
  let last = null;

  const source = new EventSource(UI.url("/api/monitor/stream"));
  source.addEventListener("open", () => UI.connection("live", "live"));
  source.addEventListener("state", (e) => render(JSON.parse(e.data)));
  source.addEventListener("end", (e) => {
    render(JSON.parse(e.data));
    source.close();
    UI.connection("over", "run over · server stopped");
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED || (last && last.finished)) {
      source.close();
      UI.connection("over", "server stopped");
    } else {
      UI.connection("lost", "reconnecting…");
    }
  });
  window.addEventListener("resize", () => last && charts(last, true));

  function render(s) {
    last = s;
    setText("#title", s.title);
    setText("[data-testid=run-state]", s.finished ? "finished" : "running");
    setText("[data-testid=done]", fmt.int(s.done));
    setText("[data-testid=total]", s.total === null ? "—" : fmt.int(s.total));
    setText("[data-testid=eta]", s.finished ? "done" : fmt.duration(s.eta_s));
    setText("[data-testid=elapsed]", fmt.duration(s.elapsed_s));
    document.getElementById("done-bar").style.width = s.total ? `${Math.min(100, (100 * s.done) / s.total)}%` : "0";
    setText("[data-testid=pass-rate]", fmt.pct(s.pass_rate));
    setText("[data-testid=correct]", fmt.int(s.correct));
    setText("[data-testid=graded]", fmt.int(s.graded));
    setText("[data-testid=failed]", fmt.int(s.failed));
    const statuses = Object.entries(s.statuses).sort().map(([k, v]) => `${k} ${v}`).join(" · ");
    setText("[data-testid=statuses]", statuses || "—");
    setText("[data-testid=errors]", Object.entries(s.errors).map(([k, v]) => `${k} ${v}`).join(" · "));
    setText("[data-testid=in-flight]", fmt.int(s.in_flight));
    setText("[data-testid=calls-in-flight]", fmt.int(s.calls_in_flight));
    setText("[data-testid=turns-per-s]", fmt.num(s.turns_per_s));
    setText("[data-testid=turns-per-s-mean]", fmt.num(s.turns_per_s_mean));
    setText("[data-testid=turns]", fmt.int(s.turns));
    setText("[data-testid=tokens-in]", fmt.int(s.tokens.input));
    setText("[data-testid=tokens-out]", fmt.int(s.tokens.output));
    const thought = s.tokens.reasoning !== null && s.tokens.reasoning !== undefined;  // only with thinking
    document.getElementById("tokens-thinking").classList.toggle("hidden", !thought);
    if (thought) setText("[data-testid=tokens-thinking]", fmt.int(s.tokens.reasoning));
    setText("[data-testid=tokens-cache-read]", fmt.int(s.tokens.cache_read));
    setText("[data-testid=tokens-cache-write]", fmt.int(s.tokens.cache_write));
    setText("[data-testid=cost]", fmt.money(s.cost));
    setText("#cost-note", s.priced ? (s.cost === null ? "a model has no price" : "at the prices given") : "no prices given");
    setText("[data-testid=rate-limited]", fmt.int(s.rate_limited));
    setText("[data-testid=retries]", fmt.int(s.retries));
    setText("[data-testid=ttft-p50]", `p50 ${fmt.ms(s.ttft_s.p50)}`);
    setText("[data-testid=ttft]", `p90 ${fmt.ms(s.ttft_s.p90)} · p99 ${fmt.ms(s.ttft_s.p99)}`);
    setText("[data-testid=turn-p50]", `p50 ${fmt.ms(s.turn_s.p50)}`);
    setText("[data-testid=turn-latency]", `p90 ${fmt.ms(s.turn_s.p90)} · p99 ${fmt.ms(s.turn_s.p99)}`);
    setText("[data-testid=dropped]", `${fmt.int(s.dropped.events)} · ${fmt.int(s.dropped.pages)}`);
    limiters(s.limiters);
    charts(s);
    traces(s);
  }

  let drawnAt = null;
  function charts(s, force) {
    const x = s.series.t;
    const at = `${x.length}:${x[x.length - 1]}`;
    if (at === drawnAt && !force) return;
    drawnAt = at;
    Charts.draw(document.getElementById("turns-chart"), x, [{ values: s.series.turns_per_s }]);
    Charts.draw(document.getElementById("tokens-chart"), x,
      [{ values: s.series.output_tokens_per_s }, { values: s.series.input_tokens_per_s }]);
  }

  function limiters(all) {
    const box = document.getElementById("limiters");
    const names = Object.keys(all);
    if (!names.length) return;
    box.replaceChildren(...names.map((name) => {
      const l = all[name];
      const limit = l.concurrency_limit === null ? "no cap" : fmt.int(l.concurrency_limit);
      const row = el("div", { class: "gauge" },
        el("strong", {}, name), ` · calls ${fmt.int(l.in_flight)} of ${limit} · waiting ${fmt.int(l.waiting)}` +
        ` · 429s ${fmt.int(l.rate_limited)} · retries ${fmt.int(l.retries)}` +
        (l.cooldown_remaining_s > 0 ? ` · cooling down ${fmt.num(l.cooldown_remaining_s)} s` : "") +
        (l.waiting_for ? ` · WAITING ${fmt.num(l.waiting_left_s)} s for ${l.waiting_for}` : ""));
      for (const [budget, b] of Object.entries(l.budgets)) {
        const fill = el("div");
        fill.style.width = `${b.capacity ? Math.max(0, Math.min(100, (100 * b.level) / b.capacity)) : 0}%`;
        row.append(el("div", { class: "gauge" }, `${budget}: ${fmt.int(b.level)} of ${fmt.int(b.capacity)} left`,
          el("div", { class: "bar" }, fill)));
      }
      return row;
    }));
  }

  // Rows keyed by trace id, updated in place: a tick changes a few cells, not the table.
  function syncRows(tbody, items, cells) {
    const old = new Map([...tbody.children].map((row) => [row.dataset.traceId, row]));
    items.forEach((item, position) => {
      let row = old.get(item.trace_id);
      const texts = cells(item);
      if (!row) {
        row = el("tr", { class: "clickable", dataset: { traceId: item.trace_id }, onclick: () => watch(item.trace_id) },
          texts.map(([text, cls]) => el("td", { class: cls || "" }, text)));
      } else {
        old.delete(item.trace_id);
        texts.forEach(([text, cls], i) => {
          const cell = row.children[i];
          if (cell.textContent !== String(text)) cell.textContent = text;
          if ((cls || "") !== cell.className) cell.className = cls || "";
        });
      }
      row.classList.toggle("selected", item.trace_id === watched);
      if (tbody.children[position] !== row) tbody.insertBefore(row, tbody.children[position] || null);
    });
    for (const row of old.values()) row.remove();
  }

  function traces(s) {
    setText("#traces-count", s.traces_shown_of > s.traces.length
      ? `(${s.traces.length} of ${s.traces_shown_of})` : `(${s.traces.length})`);
    syncRows(document.getElementById("traces"), s.traces, (t) => [[t.trace_id, "mono"], [t.turn], [t.kind],
      [fmt.int(t.output_tokens)], [`${fmt.num(t.age_s)} s`]]);
    syncRows(document.getElementById("recent"), s.recent, (t) => [[t.trace_id, "mono"], [t.problem_id], [t.status],
      [t.correct === null ? "—" : t.correct ? "yes" : "no", t.correct === true ? "ok" : t.correct === false ? "no" : "muted"],
      [t.turns]]);
  }

  // ---------------------------------------------------------------- one trace, streaming

  const box = document.getElementById("watch-turns");

  function turnNode(turn) {
    let node = box.querySelector(`[data-turn="${turn.turn}"]`);
    if (!node) {
      const text = document.createTextNode("");
      node = el("div", { class: "msg assistant streaming", dataset: { turn: String(turn.turn) } },
        el("div", { class: "head" }, el("span", { class: "role" }, "assistant"), el("span", {}, `turn ${turn.turn}`),
          el("span", {}, turn.kind || "")),
        el("pre", { class: "text", "data-testid": "watch-text" }, text),
        el("div", { class: "tokens", "data-testid": "turn-tokens" }, "streaming…"));
      node.textNode = text;
      box.append(node);
    }
    return node;
  }

  function finishTurn(turn) {
    const node = turnNode(turn);
    if (turn.text !== null && turn.text !== undefined) node.textNode.data = turn.text;
    if (turn.reasoning) UI.streamThinking(node, turn.reasoning, true, turn.usage);
    if (turn.done) {
      node.classList.remove("streaming");
      node.querySelector(".tokens").textContent = `${fmt.tokens(turn.usage)} · ttft ${fmt.ms(turn.ttft_s)} · ` +
        `${fmt.ms(turn.e2e_s)}${turn.attempts > 1 ? ` · ${turn.attempts} attempts` : ""}`;
    }
  }

  function ended(info) {
    setText("#watch-status", `finished: ${info.status}` +
      (info.correct === null ? "" : info.correct ? " · correct" : " · incorrect") + ` · ${info.turns} turns`);
  }

  function watch(traceId) {
    if (watchSource) watchSource.close();
    watched = traceId;
    setText("#watch-id", traceId);
    setText("#watch-status", "streaming");
    box.replaceChildren();
    for (const row of document.querySelectorAll("tr[data-trace-id]")) {
      row.classList.toggle("selected", row.dataset.traceId === traceId);
    }
    const stream = new EventSource(UI.url(`/api/monitor/traces/${encodeURIComponent(traceId)}/stream`));
    watchSource = stream;
    stream.addEventListener("trace", (e) => {
      const trace = JSON.parse(e.data);
      box.replaceChildren();
      for (const turn of trace.turns) finishTurn(turn);
      if (trace.finished) { ended(trace.finished); stream.close(); }
    });
    stream.addEventListener("turn_start", (e) => turnNode(JSON.parse(e.data)));
    stream.addEventListener("delta", (e) => {
      const d = JSON.parse(e.data);
      turnNode({ turn: d.turn }).textNode.appendData(d.text);
    });
    stream.addEventListener("thinking", (e) => {  // the thinking, apart from the answer
      const d = JSON.parse(e.data);
      UI.streamThinking(turnNode({ turn: d.turn }), d.text);
    });
    stream.addEventListener("turn_end", (e) => finishTurn(JSON.parse(e.data)));
    stream.addEventListener("trace_end", (e) => { ended(JSON.parse(e.data)); stream.close(); });
    stream.addEventListener("error", () => { if (stream.readyState === EventSource.CLOSED || (last && last.finished)) stream.close(); });
  }
})();
