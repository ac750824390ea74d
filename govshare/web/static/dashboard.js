// The leaders' dashboard: every /api/v1/metrics endpoint drawn with the vendored ECharts.
// Each chart container gets data-rendered="1" once drawn (the browser tests wait for it).
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("dash-config").textContent);
  var L = cfg.labels;
  var en = cfg.lang === "en";
  var palette = ["#1f5fa8", "#2a9d8f", "#e9a23b", "#d1495b", "#6c5ce7", "#8d99ae", "#52b788"];
  var charts = [];

  function tr(key, fallback) { return L[key] !== undefined ? L[key] : (fallback || key); }
  function nameOf(obj) {
    if (!obj) { return ""; }
    return en ? (obj.name_en || obj.name_zh || obj.code) : (obj.name_zh || obj.name_en || obj.code);
  }
  function short(text, n) {
    // Axis labels: the city's own name starts almost every department name; drop it there.
    text = String(text || "").replace(/^(深圳市|Shenzhen\s+(Municipal\s+)?)/, "");
    if (en) { n = Math.round(n * 1.8); }
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }
  function hours(h) {
    if (h === null || h === undefined) { return "—"; }
    if (h * 60 < 1) { return tr("unit.under_minute"); }
    if (h < 1) { return tr("unit.minutes").replace("{n}", Math.round(h * 60)); }
    if (h < 48) { return tr("unit.hours").replace("{n}", h.toFixed(1)); }
    return tr("unit.days").replace("{n}", (h / 24).toFixed(1));
  }
  function pct(x) { return x === null || x === undefined ? "—" : (100 * x).toFixed(0) + "%"; }
  function num(x) { return x === null || x === undefined ? "—" : Number(x).toLocaleString(en ? "en" : "zh-CN"); }
  // Counts of persons' records below the threshold come withheld (kernel.privacy): "<10".
  function records(x, withheld, min) { return withheld ? "<" + min : num(x); }

  function query(extra) {
    var p = new URLSearchParams();
    if (cfg.from) { p.set("from", cfg.from); }
    if (cfg.to) { p.set("to", cfg.to); }
    if (cfg.department) { p.set("department", cfg.department); }
    Object.keys(extra || {}).forEach(function (k) { p.set(k, extra[k]); });
    return p.toString();
  }
  function get(name, extra) {
    return fetch("/api/v1/metrics/" + name + "?" + query(extra), {
      credentials: "same-origin", headers: {"Accept": "application/json"}
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error("/api/v1/metrics/" + name + ": " + (body.detail || r.status)); }
        return body;
      });
    });
  }
  function failed(ids) {
    // A chart whose data could not be loaded says so in its own box.
    return function (err) {
      ids.forEach(function (id) {
        var el = document.getElementById(id);
        if (el && !el.dataset.rendered) {
          el.classList.add("empty");
          el.textContent = tr("chart.failed");
          el.dataset.rendered = "error";
        }
      });
      fail(err);
    };
  }
  function fail(err) {
    var box = document.getElementById("dash-error");
    box.hidden = false;
    box.textContent = (box.textContent ? box.textContent + " · " : "") + err.message;
  }
  function draw(id, option) {
    var el = document.getElementById(id);
    if (!el) { return; }
    var chart = echarts.init(el, null, {renderer: "canvas", locale: en ? "EN" : "ZH"});
    option.color = option.color || palette;
    option.animation = false;  // screenshots and tests see the final figure at once
    option.textStyle = {fontFamily: "system-ui, 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif"};
    chart.setOption(option);
    charts.push(chart);
    el.dataset.rendered = "1";
  }
  function empty(id) {
    var el = document.getElementById(id);
    if (el) { el.classList.add("empty"); el.textContent = tr("chart.no_data"); el.dataset.rendered = "1"; }
  }
  function bars(id, categories, series, opts) {
    if (!categories.length) { return empty(id); }
    opts = opts || {};
    draw(id, {
      tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
      legend: series.length > 1 ? {top: 0} : undefined,
      grid: {left: opts.horizontal ? 8 : 40, right: 16, top: series.length > 1 ? 32 : 12, bottom: 8, containLabel: true},
      xAxis: opts.horizontal ? {type: "value", max: opts.max, name: opts.unit} : {type: "category", data: categories, axisLabel: {interval: 0, rotate: categories.length > 6 ? 35 : 0}},
      yAxis: opts.horizontal ? {type: "category", data: categories, inverse: true} : {type: "value", max: opts.max, name: opts.unit},
      series: series.map(function (s) { return Object.assign({type: "bar", barMaxWidth: 28}, s); })
    });
  }

  function kpi(key, text) {
    var el = document.getElementById("kpi-" + key);
    if (el) { el.textContent = text; }
  }
  function note(key, text) {
    var el = document.getElementById("kpi-note-" + key);
    if (el) { el.textContent = text; }
  }
  function seconds(x) {
    if (x === null || x === undefined) { return "—"; }
    if (x < 120) { return tr("unit.seconds").replace("{n}", x.toFixed(x < 10 ? 1 : 0)); }
    return hours(x / 3600);
  }

  get("overview").then(function (o) {
    kpi("applications", num(o.applications));
    kpi("delivered", num(o.delivered));
    // One headline time per sharing type, never mixed: unconditional deliveries are
    // immediate (seconds), conditional ones wait for a reply (working days, vs the deadline).
    var u = o.sharing.unconditional, c = o.sharing.conditional;
    kpi("unconditional_p50", seconds(u.p50_seconds));
    note("unconditional_p50", tr("kpi.count").replace("{n}", num(u.delivered)));
    kpi("conditional_p50", c.p50_working_days === null ? "—"
      : tr("unit.working_days").replace("{n}", c.p50_working_days.toFixed(1)));
    note("conditional_p50", tr("kpi.count").replace("{n}", num(c.delivered)) + " · " +
      tr("kpi.deadline").replace("{n}", c.deadline_working_days));
    kpi("on_time_rate", pct(o.on_time_rate));
    note("on_time_rate", tr("kpi.replies").replace("{n}", num(c.replied)));
    kpi("overdue_now", num(o.overdue_now));
    kpi("rows_delivered", records(o.rows_delivered, o.rows_delivered_withheld, o.min_count));
    kpi("open_notices", num(o.open_notices));
    kpi("quality_avg", o.quality_avg === null ? "—" : o.quality_avg.toFixed(1));
  }).catch(fail);

  get("volume", {bucket: "week"}).then(function (v) {
    var periods = v.series.map(function (s) { return s.period; });
    if (!periods.length) { empty("chart-volume"); } else {
      draw("chart-volume", {
        tooltip: {trigger: "axis"}, legend: {top: 0},
        grid: {left: 40, right: 40, top: 32, bottom: 8, containLabel: true},
        xAxis: {type: "category", data: periods},
        yAxis: [{type: "value"}, {type: "value", name: tr("chart.rows"), splitLine: {show: false}}],
        series: [
          {name: tr("chart.applications"), type: "bar", data: v.series.map(function (s) { return s.applications; })},
          {name: tr("chart.approvals"), type: "bar", data: v.series.map(function (s) { return s.approvals; })},
          {name: tr("chart.deliveries"), type: "bar", data: v.series.map(function (s) { return s.deliveries; })},
          {name: tr("chart.rows"), type: "line", yAxisIndex: 1, smooth: true, data: v.series.map(function (s) { return s.rows; })}
        ]
      });
    }
    var deps = v.by_department.slice(0, 15);
    bars("chart-by-department", deps.map(function (d) { return short(nameOf(d.department), 10); }), [
      {name: tr("chart.provided"), data: deps.map(function (d) { return d.provided; })},
      {name: tr("chart.requested"), data: deps.map(function (d) { return d.requested; })},
      {name: tr("chart.deliveries"), data: deps.map(function (d) { return d.deliveries; })}
    ]);
  }).catch(failed(["chart-volume", "chart-by-department"]));

  get("flows").then(function (f) {
    var codes = f.departments.map(function (d) { return d.code; });
    if (!f.cells.length) { return empty("chart-flows"); }
    var names = f.departments.map(function (d) { return short(nameOf(d), 8); });
    var max = 1;
    var data = f.cells.map(function (c) {
      max = Math.max(max, c.applications);
      return [codes.indexOf(c.requester), codes.indexOf(c.provider), c.applications, c.deliveries,
              records(c.rows, c.rows_withheld, f.min_count)];
    });
    draw("chart-flows", {
      tooltip: {position: "top", formatter: function (p) {
        return names[p.value[1]] + " → " + names[p.value[0]] + "<br>" + tr("chart.applications") + ": " +
          p.value[2] + "<br>" + tr("chart.deliveries") + ": " + p.value[3] + "<br>" + tr("chart.rows") + ": " + p.value[4];
      }},
      grid: {left: 8, right: 16, top: 8, bottom: 56, containLabel: true},
      xAxis: {type: "category", data: names, name: tr("chart.requester"), nameLocation: "middle", nameGap: 40,
              axisLabel: {interval: 0, rotate: 40}, splitArea: {show: true}},
      yAxis: {type: "category", data: names, name: tr("chart.provider"), axisLabel: {interval: 0}, splitArea: {show: true}},
      visualMap: {min: 0, max: max, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                  itemHeight: 120, inRange: {color: ["#eef4fb", "#7fb0e0", "#1f5fa8"]}},
      series: [{type: "heatmap", data: data, label: {show: true}, emphasis: {itemStyle: {shadowBlur: 6}}}]
    });
  }).catch(failed(["chart-flows"]));

  function latencyBars(id, groups) {
    var g = groups.slice(0, 15);
    bars(id, g.map(function (x) { return short(en ? x.label_en : x.label_zh, 12); }), [
      {name: "p50", data: g.map(function (x) { return x.p50_hours; })},
      {name: "p90", data: g.map(function (x) { return x.p90_hours; })},
      {name: "p99", data: g.map(function (x) { return x.p99_hours; })}
    ], {unit: tr("chart.hours")});
  }

  get("latency", {by: "stage", bucket: "week"}).then(function (l) {
    latencyBars("chart-latency-stage", l.groups);
    var tbody = document.querySelector("#latency-stage-table tbody");
    l.groups.forEach(function (x) {
      var tr_ = document.createElement("tr");
      tr_.dataset.key = x.key;
      [en ? x.label_en : x.label_zh, x.n, hours(x.p50_hours), hours(x.p90_hours), hours(x.p99_hours)].forEach(function (v, i) {
        var td = document.createElement("td");
        if (i) { td.className = "num"; }
        td.textContent = v;
        tr_.appendChild(td);
      });
      tbody.appendChild(tr_);
    });
    if (!l.trend.length) { return empty("chart-latency-trend"); }
    draw("chart-latency-trend", {
      tooltip: {trigger: "axis"}, legend: {top: 0},
      grid: {left: 40, right: 16, top: 32, bottom: 8, containLabel: true},
      xAxis: {type: "category", data: l.trend.map(function (p) { return p.period; })},
      yAxis: {type: "value", name: tr("chart.hours")},
      series: [{name: "p50", type: "line", smooth: true, data: l.trend.map(function (p) { return p.p50_hours; })},
               {name: "p90", type: "line", smooth: true, data: l.trend.map(function (p) { return p.p90_hours; })}]
    });
  }).catch(failed(["chart-latency-stage", "chart-latency-trend"]));
  get("latency", {by: "provider"}).then(function (l) { latencyBars("chart-latency-provider", l.groups); }).catch(failed(["chart-latency-provider"]));
  get("latency", {by: "sharing_type"}).then(function (l) { latencyBars("chart-latency-type", l.groups); }).catch(failed(["chart-latency-type"]));

  get("timeliness").then(function (t) {
    var rows = t.by_provider.slice(0, 15);
    bars("chart-timeliness", rows.map(function (r) { return short(nameOf(r.department), 10); }), [
      {name: tr("chart.on_time_rate"), data: rows.map(function (r) { return r.on_time_rate === null ? null : Math.round(100 * r.on_time_rate); })}
    ], {horizontal: true, max: 100});
    var tbody = document.querySelector("#overdue-table tbody");
    t.overdue.slice(0, 20).forEach(function (o) {
      var row = document.createElement("tr");
      [o.application_id, nameOf(o.resource), nameOf(o.provider), nameOf(o.requester), o.working_days_overdue].forEach(function (v, i) {
        var td = document.createElement("td");
        if (i === 4) { td.className = "num"; }
        td.textContent = v;
        row.appendChild(td);
      });
      tbody.appendChild(row);
    });
  }).catch(failed(["chart-timeliness"]));

  get("failures").then(function (f) {
    if (!f.rejections_by_reason.length) { empty("chart-rejections"); } else {
      draw("chart-rejections", {
        tooltip: {trigger: "item"}, legend: {bottom: 0, type: "scroll"},
        series: [{type: "pie", radius: ["35%", "65%"], center: ["50%", "45%"],
                  data: f.rejections_by_reason.map(function (r) { return {name: tr("reason." + r.reason, r.reason), value: r.count}; })}]
      });
    }
    bars("chart-bounces", f.bounces.map(function (b) { return String(b.bounces); }),
         [{name: tr("chart.applications"), data: f.bounces.map(function (b) { return b.applications; })}]);
    document.getElementById("failures-note").textContent = tr("chart.failures_note")
      .replace("{violations}", f.notice_violations).replace("{blocked}", f.blocked_deliveries)
      .replace("{wait}", hours(f.conditions_wait.p50_hours));
  }).catch(failed(["chart-rejections", "chart-bounces"]));

  get("quality").then(function (q) {
    var r = q.ranking.slice(0, 15);
    bars("chart-quality-ranking", r.map(function (x) { return short(nameOf(x.department), 10); }),
         [{name: tr("chart.score"), data: r.map(function (x) { return x.score === null ? null : Math.round(x.score * 10) / 10; })}],
         {horizontal: true, max: 100});
    bars("chart-quality-distribution", q.distribution.map(function (d) { return d.bucket; }),
         [{name: tr("chart.resources"), data: q.distribution.map(function (d) { return d.resources; })}]);
  }).catch(failed(["chart-quality-ranking", "chart-quality-distribution"]));

  get("resources").then(function (r) {
    var m = r.most_requested.slice(0, 12);
    bars("chart-most-requested", m.map(function (x) { return short(nameOf(x.resource), 14); }), [
      {name: tr("chart.applications"), data: m.map(function (x) { return x.applications; })},
      {name: tr("chart.deliveries"), data: m.map(function (x) { return x.deliveries; })}
    ], {horizontal: true});
    document.getElementById("resources-note").textContent = tr("chart.resources_note")
      .replace("{catalogued}", r.catalogued).replace("{requested}", r.requested).replace("{delivered}", r.delivered);
    var tbody = document.querySelector("#never-table tbody");
    r.never_requested.slice(0, 15).forEach(function (x) {
      var row = document.createElement("tr");
      [nameOf(x.resource), nameOf(x.provider), x.published_at].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = v;
        row.appendChild(td);
      });
      tbody.appendChild(row);
    });
  }).catch(failed(["chart-most-requested"]));

  get("feedback").then(function (f) {
    var p = f.by_provider.slice(0, 15);
    bars("chart-feedback", p.map(function (x) { return short(nameOf(x.department), 10); }), [
      {name: tr("chart.useful"), stack: "r", data: p.map(function (x) { return x.useful; })},
      {name: tr("chart.not_useful"), stack: "r", data: p.map(function (x) { return x.ratings - x.useful; })}
    ]);
    var list = document.getElementById("feedback-list");
    f.recent.slice(0, 10).forEach(function (x) {
      var li = document.createElement("li");
      li.textContent = "[" + (x.useful ? tr("chart.useful") : tr("chart.not_useful")) + "] " + nameOf(x.resource) + " · " + nameOf(x.requester) +
        (x.comment ? " — " + x.comment : "");
      list.appendChild(li);
    });
  }).catch(failed(["chart-feedback"]));

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
}());
