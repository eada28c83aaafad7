"use strict";
// Copy buttons: the command is read from the page, never duplicated into the script.
document.querySelectorAll("button.copy").forEach(function (button) {
  button.addEventListener("click", function () {
    var text = button.parentElement.querySelector("code").textContent;
    function done() { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); }
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { button.textContent = "Select and copy"; }
      document.body.removeChild(area);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  });
});

(function () {
  var canvas = document.getElementById("timeline");
  if (!canvas) { return; }
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var tip = document.getElementById("tip");
  var ROW = 30, AXIS = 26, LABEL = 130, PAD = 10;
  var COLORS = { passed: "#9ccc9c", failed: "#f2b866", error: "#f2b866", skipped: "#c9ced8",
                 xfailed: "#c9ced8", xpassed: "#c9ced8", crashed: "#b0a4c8", running: "#b0a4c8" };
  var SIGNALS = { SIGKILL: "#b71c1c", SIGTERM: "#e65100", SIGINT: "#1565c0", other: "#455a64" };
  var MARKS = { crash: "#c62828", oom: "#8e24aa", hang: "#ef6c00", kill: "#6d4c41", exit: "#00838f", other: "#757575" };

  // Absolute starts/ends per row, decoded once; names only when first hovered.
  function expand(runs, n) {
    var out = new Uint32Array(n), k = 0;
    for (var j = 0; j < runs.length; j += 2) { for (var c = 0; c < runs[j + 1]; c++) { out[k++] = runs[j]; } }
    return out;
  }
  var memMax = 1;
  data.rows.forEach(function (row) {
    row.o = expand(row.o, row.s.length);
    row.m = expand(row.m, row.s.length);
    var n = row.s.length, starts = new Float64Array(n), ends = new Float64Array(n), t = 0;
    for (var i = 0; i < n; i++) {
      t += row.s[i];
      starts[i] = t;
      ends[i] = row.d[i] < 0 ? -1 : t + row.d[i];
    }
    for (i = 0; i < n; i++) {
      // An unfinished test ran until its process ended (crash, kill) or the next test began.
      if (ends[i] < 0) { ends[i] = i + 1 < n ? starts[i + 1] : (row.end !== null ? row.end : data.t1); }
    }
    row.starts = starts;
    row.ends = ends;
    row.blamed = new Set(row.blame);
    row.names = null;
    row.mem.forEach(function (p) { if (p[1] > memMax) { memMax = p[1]; } });
  });

  function names(row) {
    if (row.names === null && row.named) {
      row.names = row.starts.length ? new Array(row.starts.length).fill("(name left out: report too large)") : [];
      Object.keys(row.named).forEach(function (k) { row.names[Number(k)] = row.named[k]; });
    }
    if (row.names === null) {
      var out = new Array(row.n.length), prev = "";
      for (var i = 0; i < row.n.length; i++) {
        var name = prev.slice(0, row.p[i]) + row.n[i];
        out[i] = name;
        prev = name;
      }
      row.names = out;
    }
    return row.names;
  }

  var full = Math.max(data.t1, data.duration_ms || 0, 1);
  var view = { a: 0, b: full };
  var width = 0;

  function x(t) { return LABEL + (t - view.a) / (view.b - view.a) * (width - LABEL - PAD); }
  function tAt(px) { return view.a + (px - LABEL) / (width - LABEL - PAD) * (view.b - view.a); }

  function fmt(ms) {
    var s = ms / 1000;
    if (s < 60) { return s.toFixed(s < 10 ? 2 : 1) + " s"; }
    var m = Math.floor(s / 60);
    return m + " min " + Math.round(s - m * 60) + " s";
  }

  function draw() {
    var ratio = window.devicePixelRatio || 1;
    width = canvas.clientWidth;
    var height = AXIS + data.rows.length * ROW + 4;
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";

    // Time axis.
    var span = view.b - view.a, step = Math.pow(10, Math.floor(Math.log10(span / 6)));
    if (span / step > 12) { step *= 5; } else if (span / step > 6) { step *= 2; }
    ctx.fillStyle = "#5b6475";
    ctx.strokeStyle = "#eef0f4";
    for (var t = Math.ceil(view.a / step) * step; t <= view.b; t += step) {
      var gx = x(t);
      ctx.beginPath(); ctx.moveTo(gx, AXIS - 4); ctx.lineTo(gx, height); ctx.stroke();
      if (gx + 2 + ctx.measureText(fmt(t)).width < width) { ctx.fillText(fmt(t), gx + 2, AXIS / 2); }
    }

    data.rows.forEach(function (row, r) {
      var y = AXIS + r * ROW;
      ctx.fillStyle = r % 2 ? "#fafbfc" : "#ffffff";
      ctx.fillRect(0, y, width, ROW);
      ctx.fillStyle = "#1d2330";
      ctx.fillText(row.label, 4, y + ROW / 2);
      ctx.save();
      ctx.beginPath(); ctx.rect(LABEL, y, width - LABEL, ROW); ctx.clip();
      var codes = data.outcomes, lastX = {}, i, n = row.starts.length;
      // Find the first visible test by binary search; 20,000 tests per row are common.
      var lo = 0, hi = n;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (row.ends[mid] < view.a) { lo = mid + 1; } else { hi = mid; } }
      for (i = lo; i < n && row.starts[i] <= view.b; i++) {
        var outcome = codes[row.o[i]], color = row.blamed.has(i) ? "#d32f2f" : (COLORS[outcome] || "#c9ced8");
        var x0 = x(row.starts[i]), x1 = x(row.ends[i]);
        // Sub-pixel tests of one colour land on the same pixel: draw it once.
        if (!row.blamed.has(i) && lastX[color] !== undefined && x1 - lastX[color] < 0.5) { continue; }
        lastX[color] = x1;
        ctx.fillStyle = color;
        ctx.fillRect(x0, y + 6, Math.max(1, x1 - x0 - (x1 - x0 > 3 ? 1 : 0)), ROW - 12);
      }
      row.blame.forEach(function (b) {
        var bx = x(row.starts[b]);
        ctx.fillStyle = "#d32f2f";
        ctx.fillRect(bx, y + 3, Math.max(3, x(row.ends[b]) - bx), ROW - 6);
      });
      if (row.mem.length > 1) {
        ctx.strokeStyle = "rgba(21,101,192,0.85)";
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        row.mem.forEach(function (p, k) {
          var mx = x(p[0]), my = y + ROW - 3 - (p[1] / memMax) * (ROW - 6);
          if (k === 0) { ctx.moveTo(mx, my); } else { ctx.lineTo(mx, my); }
        });
        ctx.stroke();
      }
      ctx.restore();
      ctx.strokeStyle = "#eef0f4";
      ctx.beginPath(); ctx.moveTo(0, y + ROW); ctx.lineTo(width, y + ROW); ctx.stroke();
    });

    data.marks.forEach(function (m) {
      if (m.at === null) { return; }
      var mx = x(m.at), my = AXIS + m.row * ROW;
      if (mx < LABEL || mx > width) { return; }
      ctx.fillStyle = MARKS[m.kind] || MARKS.other;
      ctx.beginPath(); ctx.moveTo(mx - 7, my + 1); ctx.lineTo(mx + 7, my + 1); ctx.lineTo(mx, my + 12); ctx.fill();
      ctx.fillRect(mx - 1, my + 1, 2, ROW - 2);
      var w = ctx.measureText(m.label).width;
      var lx = mx + 9 + w > width ? mx - 9 - w : mx + 9;
      ctx.fillStyle = "rgba(255,255,255,0.9)";
      ctx.fillRect(lx - 2, my + 2, w + 4, 13);
      ctx.fillStyle = MARKS[m.kind] || MARKS.other;
      ctx.fillText(m.label, lx, my + 9);
    });
    // Captured signals: an arrow from the sender's row (or from above, outside the run) to the
    // receiver's row, at the time the kernel generated it.
    (data.signals || []).forEach(function (sg) {
      var sx = x(sg.at);
      if (sx < LABEL || sx > width) { return; }
      var ty = AXIS + sg.to * ROW + ROW / 2;
      var fy = sg.from === null ? AXIS : AXIS + sg.from * ROW + ROW / 2;
      if (sg.from === sg.to) { fy = ty - ROW / 2 + 2; }
      var color = SIGNALS[sg.signal] || SIGNALS.other, dir = ty >= fy ? 1 : -1;
      ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.5;
      ctx.setLineDash(sg.from === null ? [3, 2] : []);
      ctx.beginPath(); ctx.moveTo(sx, fy); ctx.lineTo(sx, ty - dir * 5); ctx.stroke();
      ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(sx - 4, ty - dir * 6); ctx.lineTo(sx + 4, ty - dir * 6); ctx.lineTo(sx, ty); ctx.fill();
      if (sg.from !== null && sg.from !== sg.to) { ctx.beginPath(); ctx.arc(sx, fy, 2.5, 0, 2 * Math.PI); ctx.fill(); }
    });
    canvas.setAttribute("data-drawn", String(data.rows.length));
    // Milliseconds from navigation to the first complete drawing, read by the benchmark.
    if (!document.documentElement.hasAttribute("data-render-ms")) {
      document.documentElement.setAttribute("data-render-ms", String(Math.round(performance.now())));
    }
  }

  function hit(ev) {
    var rect = canvas.getBoundingClientRect(), px = ev.clientX - rect.left, py = ev.clientY - rect.top;
    var r = Math.floor((py - AXIS) / ROW);
    if (r < 0 || r >= data.rows.length || px < LABEL) { return null; }
    var row = data.rows[r], t = tAt(px), slack = (view.b - view.a) / (width - LABEL) * 2;
    var mark = null;
    data.marks.forEach(function (m) { if (m.row === r && m.at !== null && Math.abs(m.at - t) <= slack * 3) { mark = m; } });
    var sig = null;
    (data.signals || []).forEach(function (sg) { if ((sg.to === r || sg.from === r) && Math.abs(sg.at - t) <= slack * 3) { sig = sg; } });
    var lo = 0, hi = row.starts.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (row.starts[mid] > t + slack) { hi = mid - 1; } else { found = mid; lo = mid + 1; }
    }
    if (found >= 0 && row.ends[found] < t - slack) { found = -1; }
    return { row: row, index: found, mark: mark, signal: sig };
  }

  var drag = null;
  canvas.addEventListener("mousemove", function (ev) {
    if (drag) {
      var dt = (drag.x - ev.clientX) / (width - LABEL - PAD) * (drag.b - drag.a);
      view.a = Math.max(0, drag.a + dt); view.b = view.a + (drag.b - drag.a);
      draw();
      return;
    }
    var h = hit(ev);
    if (!h || (h.index < 0 && !h.mark && !h.signal)) { tip.style.display = "none"; return; }
    var lines = [h.row.label];
    if (h.signal) { lines.push(h.signal.label + " at " + fmt(h.signal.at)); }
    if (h.mark) { lines.push(h.mark.label + " — click for the incident"); }
    if (h.index >= 0) {
      var i = h.index;
      lines.push(data.modules[h.row.m[i]] + "::" + names(h.row)[i]);
      lines.push(data.outcomes[h.row.o[i]] + " · started " + fmt(h.row.starts[i]) + " · took " +
                 (h.row.d[i] < 0 ? "(did not finish)" : fmt(h.row.d[i])));
      if (h.row.blamed.has(i)) { lines.push("named by an incident"); }
    }
    tip.textContent = lines.join("\n");
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 580) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
    tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; drag = null; });
  canvas.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, a: view.a, b: view.b }; });
  window.addEventListener("mouseup", function (ev) {
    if (drag && Math.abs(ev.clientX - drag.x) < 3) {
      var h = hit(ev);
      if (h && h.mark) { location.hash = h.mark.anchor; }
    }
    drag = null;
  });
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var rect = canvas.getBoundingClientRect(), t = tAt(ev.clientX - rect.left);
    var k = ev.deltaY > 0 ? 1.25 : 0.8, a = t - (t - view.a) * k, b = t + (view.b - t) * k;
    view.a = Math.max(0, a); view.b = Math.min(full, Math.max(view.a + 5, b));
    draw();
  }, { passive: false });
  function reset() { view.a = 0; view.b = full; draw(); }
  canvas.addEventListener("dblclick", reset);
  document.getElementById("reset-zoom").addEventListener("click", reset);
  window.addEventListener("resize", draw);
  draw();
})();
