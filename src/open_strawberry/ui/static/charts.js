// Line charts on a <canvas>, drawn by hand (no charting library): a time axis, a value axis
// from zero, and one line per series.
"use strict";

const Charts = (() => {
  const colors = ["#d0344b", "#2f6fda", "#1a7f4b"];

  function nice(max) {
    if (!(max > 0)) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= max) return m * step;
    return 10 * step;
  }

  function short(v) {
    if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
    if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
    return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
  }

  // xs: seconds; series: [{values: [...]}]; drawn in order, colours by position.
  function draw(canvas, xs, series) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 44, right = 8, top = 8, bottom = 20;
    const w = width - left - right, h = height - top - bottom;
    const x0 = xs.length ? xs[0] : 0, x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 1;
    let max = 0;
    for (const s of series) for (const v of s.values) if (v > max) max = v;
    const ymax = nice(max * 1.05);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#667085";
    g.strokeStyle = "#e3e6eb";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + h - (h * i) / 4;
      g.beginPath(); g.moveTo(left, y); g.lineTo(left + w, y); g.stroke();
      g.textAlign = "right"; g.textBaseline = "middle";
      g.fillText(short((ymax * i) / 4), left - 6, y);
    }
    g.textBaseline = "top";
    for (let i = 0; i <= 4; i++) {
      const t = x0 + ((x1 - x0) * i) / 4;
      g.textAlign = i === 0 ? "left" : i === 4 ? "right" : "center";
      g.fillText(x1 - x0 < 8 ? `${t.toFixed(1)}s` : `${Math.round(t)}s`, left + (w * i) / 4, top + h + 4);
    }
    series.forEach((s, index) => {
      if (!s.values.length) return;
      g.strokeStyle = colors[index % colors.length];
      g.lineWidth = 1.8;
      g.beginPath();
      s.values.forEach((v, i) => {
        const x = left + (x1 > x0 ? ((xs[i] - x0) / (x1 - x0)) * w : 0);
        const y = top + h - (Math.max(0, v) / ymax) * h;
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    });
  }

  return { draw };
})();
