// biobench report: the charts of a run, a study and the cost page, drawn with Chart.js from
// the JSON each page embeds (<script type="application/json">). Hovering shows the numbers of
// the epoch (or trial, or rule) under the pointer.
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83",
                 "#6e7781", "#bf3989", "#4d2d00", "#0550ae"];
  var SPLITS = { train: [], test: [6, 3], val: [2, 2] };
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 12;

  function data(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  function colour(i) { return COLOURS[i % COLOURS.length]; }
  function lines(canvas, labels, series, yTitle) {
    new Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: series },
      options: {
        spanGaps: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { labels: { usePointStyle: true, pointStyle: "line" } },
          tooltip: { callbacks: { title: function (items) { return "epoch " + items[0].label; } } }
        },
        scales: { x: { title: { display: true, text: "epoch" } }, y: { title: { display: true, text: yTitle } } }
      }
    });
  }

  var run = data("run-data");
  if (run) {
    var curves = run.curves;
    ["top1", "top5"].forEach(function (k) {
      var canvas = document.getElementById("chart-" + k);
      if (!canvas) return;
      var series = [];
      ["train", "test", "val"].forEach(function (split, i) {
        var values = curves[split + "_" + k];
        if (values) series.push({ label: split + " " + k.replace("top", "top-"), data: values,
          borderColor: colour(i), backgroundColor: colour(i), borderDash: SPLITS[split], pointRadius: 2 });
      });
      lines(canvas, curves.epoch, series, "error (%)");
    });
    var align = run.alignment;
    Object.keys(align.metrics).forEach(function (metric) {
      var canvas = document.getElementById("chart-" + metric);
      if (!canvas) return;
      var series = Object.keys(align.metrics[metric]).map(function (layer, i) {
        return { label: layer, data: align.metrics[metric][layer], borderColor: colour(i),
                 backgroundColor: colour(i), pointRadius: 2 };
      });
      lines(canvas, align.epoch, series, metric === "signal_cosine" ? "cosine" : "degrees");
    });
  }

  var study = data("study-data");
  var trials = document.getElementById("chart-trials");
  if (study && trials) {
    var points = study.trial.map(function (t, i) { return { x: t, y: study.objective[i], state: study.state[i] }; })
      .filter(function (p) { return p.y !== null; });
    new Chart(trials, {
      type: "scatter",
      data: { datasets: [{ label: "objective", data: points, backgroundColor: colour(0) }] },
      options: {
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (c) {
          return "trial " + c.raw.x + ": " + c.raw.y.toFixed(2) + "% (" + c.raw.state + ")"; } } } },
        scales: { x: { title: { display: true, text: "trial" }, ticks: { precision: 0 } }, y: { title: { display: true, text: "objective (%)" } } }
      }
    });
  }

  var cost = data("cost-data");
  if (cost) {
    var groups = [];
    cost.forEach(function (p) { if (groups.indexOf(p.group) < 0) groups.push(p.group); });
    ["step", "memory", "flops"].forEach(function (axis) {
      var canvas = document.getElementById("chart-" + axis);
      if (!canvas) return;
      var datasets = [];
      groups.forEach(function (group, i) {
        var pts = cost.filter(function (p) { return p.group === group && p[axis] !== null && p.error !== null; })
          .map(function (p) { return { x: p[axis], y: p.error, label: p.label }; });
        if (!pts.length) return;
        datasets.push({ label: group, data: pts, backgroundColor: colour(i), borderColor: colour(i), pointRadius: 4 });
        // The frontier: the points no other point beats on both cost and error.
        var front = pts.slice().sort(function (a, b) { return a.x - b.x || a.y - b.y; })
          .filter(function (p, j, all) { return all.slice(0, j).every(function (q) { return q.y > p.y; }); });
        datasets.push({ label: group + " frontier", type: "line", data: front, borderColor: colour(i),
          backgroundColor: colour(i), borderDash: [4, 3], pointRadius: 0, fill: false });
      });
      new Chart(canvas, {
        type: "scatter",
        data: { datasets: datasets },
        options: {
          plugins: { tooltip: { callbacks: { label: function (c) {
            return (c.raw.label || "") + ": " + c.raw.x.toFixed(2) + "× BP, " + c.raw.y.toFixed(2) + "%"; } } } },
          scales: { x: { title: { display: true, text: "× BP" } }, y: { title: { display: true, text: "test top-1 error (%)" } } }
        }
      });
    });
  }
})();
