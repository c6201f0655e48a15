// Draws the dashboard charts from the JSON island the server rendered (no network calls).
(function () {
  "use strict";
  var el = document.getElementById("gs-data");
  if (!el || typeof Chart === "undefined") { return; }
  var s = JSON.parse(el.textContent);
  var palette = ["#2a9d8f", "#e76f51", "#264653", "#e9c46a", "#8d99ae", "#6a4c93"];
  var spanDays = (s.window.until - s.window.since) / 86400;
  var labels = s.window.starts.map(function (t) {
    var d = new Date(t * 1000);
    var hm = d.toTimeString().slice(0, 5);
    return spanDays > 2 ? (d.getMonth() + 1) + "/" + d.getDate() + " " + hm : hm;
  });
  var charts = {};
  window.gearshiftCharts = charts;  // for tests and curious operators

  function bandSets(band, label) {
    var lo = labels.map(function () { return band[0]; });
    var hi = labels.map(function () { return band[1]; });
    return [
      {label: label + " low", data: lo, borderColor: "rgba(100,100,100,0.4)", borderDash: [4, 4], pointRadius: 0,
       borderWidth: 1, fill: false},
      {label: label + " band", data: hi, borderColor: "rgba(100,100,100,0.4)", borderDash: [4, 4], pointRadius: 0,
       borderWidth: 1, backgroundColor: "rgba(42,157,143,0.10)", fill: "-1"}
    ];
  }

  function lineOpts(yMax, pctAxis) {
    return {
      animation: false, responsive: true, maintainAspectRatio: false, spanGaps: true,
      interaction: {mode: "index", intersect: false},
      plugins: {legend: {labels: {filter: function (item) { return !/ low$/.test(item.text); }}}},
      scales: {y: {min: 0, max: yMax, ticks: pctAxis ? {callback: function (v) { return Math.round(v * 100) + "%"; }} : {}}}
    };
  }

  function make(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) { return null; }
    charts[id] = new Chart(canvas, config);
    return charts[id];
  }

  var segSelect = document.getElementById("segment");
  var segments = Object.keys(s.routing);
  segments.forEach(function (seg) {
    var o = document.createElement("option");
    o.value = seg;
    o.textContent = (seg === "*" ? "all traffic" : seg) + " (" + s.routing[seg].total + ")";
    segSelect.appendChild(o);
  });

  function shareDatasets(seg) {
    var r = s.routing[seg];
    var band = s.bands.segment_bands[seg] || s.bands.strong_share;
    var sets = s.tiers.map(function (t, i) {
      return {label: t + " share", data: r.share[t], borderColor: palette[i % palette.length],
              backgroundColor: palette[i % palette.length], borderWidth: i === s.tiers.length - 1 ? 3 : 1.5,
              pointRadius: 2};
    });
    return sets.concat(bandSets(band, s.tiers[s.tiers.length - 1] + " SLI"));
  }

  function escDatasets(seg) {
    var r = s.routing[seg];
    return [{label: "escalation rate", data: r.escalation_rate, borderColor: palette[1], backgroundColor: palette[1],
             borderWidth: 2, pointRadius: 2}].concat(bandSets(s.bands.escalation_rate, "escalation SLI"));
  }

  if (segments.length) {
    make("chart-share", {type: "line", data: {labels: labels, datasets: shareDatasets("*")}, options: lineOpts(1, true)});
    make("chart-escalation", {type: "line", data: {labels: labels, datasets: escDatasets("*")},
                              options: lineOpts(1, true)});
    segSelect.addEventListener("change", function () {
      charts["chart-share"].data.datasets = shareDatasets(segSelect.value);
      charts["chart-share"].update();
      charts["chart-escalation"].data.datasets = escDatasets(segSelect.value);
      charts["chart-escalation"].update();
    });
  }

  make("chart-cost", {type: "line", data: {labels: labels, datasets: [
    {label: "$ per 1k requests (routed)", data: s.cost.per_1k, borderColor: palette[0], backgroundColor: palette[0],
     borderWidth: 2, pointRadius: 2},
    {label: "$ per 1k if all went to " + s.tiers[s.tiers.length - 1], data: s.cost.all_strong_per_1k,
     borderColor: palette[1], backgroundColor: palette[1], borderDash: [6, 3], borderWidth: 2, pointRadius: 2}
  ]}, options: {animation: false, responsive: true, maintainAspectRatio: false, spanGaps: true,
                interaction: {mode: "index", intersect: false}, scales: {y: {min: 0}}}});

  var sig = s.signals;
  make("chart-signals", {type: "bar", data: {labels: s.tiers, datasets: sig.signals.map(function (name, i) {
    return {label: name, backgroundColor: palette[i % palette.length],
            data: s.tiers.map(function (t) { return sig.tiers[t].rates[name]; })};
  })}, options: {animation: false, responsive: true, maintainAspectRatio: false,
                 scales: {y: {min: 0, ticks: {callback: function (v) { return Math.round(v * 1000) / 10 + "%"; }}}}}});
  document.body.setAttribute("data-charts-ready", Object.keys(charts).length);
})();
