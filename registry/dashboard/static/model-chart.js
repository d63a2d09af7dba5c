// The model page's chart: one point per version per chosen metric; versions that were in production are marked.
// Its data is the JSON block #chart-data (parsed, never evaluated); every label is drawn by Chart.js as text.
(function () {
  "use strict";
  const block = document.getElementById("chart-data");
  const canvas = document.getElementById("metrics-chart");
  if (!block || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(block.textContent);
  const colours = ["#3367d6", "#e8710a", "#137333", "#a142f4", "#c5221f", "#009688"];
  const datasets = data.series.map(function (series, i) {
    const colour = colours[i % colours.length];
    return {
      label: series.metric,
      data: series.values,
      borderColor: colour,
      backgroundColor: colour,
      spanGaps: true,
      pointStyle: data.production.map(function (p) { return p ? "rectRot" : "circle"; }),
      pointRadius: data.production.map(function (p) { return p ? 7 : 3; }),
    };
  });
  const periods = {};
  data.periods.forEach(function (p) {
    (periods[p.version] = periods[p.version] || []).push(p.start + " → " + (p.end || "now"));
  });
  // Shades the column of every version that was in production (behind the lines), so the periods read at a glance.
  const productionBands = {
    id: "pmrProductionBands",
    beforeDatasetsDraw: function (chart) {
      const x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      const n = data.versions.length;
      let drawn = 0;
      ctx.save();
      ctx.fillStyle = "rgba(19, 115, 51, 0.12)";
      data.production.forEach(function (held, i) {
        if (!held) return;
        const here = x.getPixelForValue(i);
        const left = i > 0 ? (here + x.getPixelForValue(i - 1)) / 2 : area.left;
        const right = i < n - 1 ? (here + x.getPixelForValue(i + 1)) / 2 : area.right;
        ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
        drawn += 1;
      });
      ctx.restore();
      canvas.dataset.productionBands = String(drawn);
    },
  };
  const chart = new Chart(canvas, {
    plugins: [productionBands],
    type: "line",
    data: { labels: data.labels, datasets: datasets },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        tooltip: {
          callbacks: {
            footer: function (items) {
              if (!items.length) return "";
              const version = data.versions[items[0].dataIndex];
              const held = periods[version];
              return held ? "in production: " + held.join("; ") : "";
            },
          },
        },
      },
    },
  });
  canvas.dataset.points = String(datasets.length ? chart.getDatasetMeta(0).data.length : 0);
  window.pmrChart = chart;
})();
