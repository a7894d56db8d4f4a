// pgrouter status page: polls status.json every 2 s, renders the nodes table and the pool's use,
// and draws queries per second and replication lag per node over the last 10 minutes (uPlot).
(function () {
  'use strict';
  var POLL_MS = 2000;
  var WINDOW_S = 600;
  var COLORS = ['#2e90fa', '#f79009', '#12b76a', '#9e77ed', '#f04438', '#06aed4', '#667085', '#ee46bc'];

  var times = [];
  var qpsSeries = {}; // node id -> values
  var lagSeries = {};
  var nodeIds = [];
  var nodeNames = {};
  var lagUnit = 'bytes';
  var prev = null;
  var qpsPlot = null;
  var lagPlot = null;
  var lastQps = {};

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function statusClass(s) {
    return s === 'up' || s === 'waiting' ? 'up' : s === 'down' ? 'down' : 'other';
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return '–';
    var u = ['B', 'kB', 'MB', 'GB', 'TB'];
    var i = 0;
    while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(Math.round(b)) : b.toFixed(1)) + ' ' + u[i];
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return '–';
    return s < 1 ? (s * 1000).toFixed(1) + ' ms' : s.toFixed(2) + ' s';
  }

  function fmtRate(r) {
    if (r === null || r === undefined) return '–';
    return r >= 100 ? r.toFixed(0) : r.toFixed(1);
  }

  function lagText(n) {
    if (n.role === 'primary') return '–';
    var parts = [];
    if (n.lagBytes !== null) parts.push(fmtBytes(n.lagBytes));
    if (n.lagSeconds !== null) parts.push(fmtSeconds(n.lagSeconds));
    return parts.length ? parts.join(' / ') : 'unknown';
  }

  function renderTable(d) {
    var tbody = document.querySelector('#nodes tbody');
    tbody.textContent = '';
    d.nodes.forEach(function (n) {
      var tr = el('tr', { 'data-node': n.id, 'data-status': n.status });
      tr.appendChild(el('td', null, n.id));
      tr.appendChild(el('td', null, n.hostname + ':' + n.port));
      tr.appendChild(el('td', null, n.role));
      var st = el('td');
      st.appendChild(el('span', { class: 'pill ' + statusClass(n.status) }, n.status));
      tr.appendChild(st);
      tr.appendChild(el('td', null, (n.pgStatus || '–') + (n.pgRole && n.pgRole !== 'unknown' ? ' · ' + n.pgRole : '')));
      tr.appendChild(el('td', { class: 'num' }, lagText(n)));
      tr.appendChild(el('td', null, [n.replicationState, n.syncState].filter(Boolean).join(' · ') || '–'));
      tr.appendChild(el('td', { class: 'num' }, n.weight === null ? '–' : n.weight.toFixed(2)));
      tr.appendChild(el('td', { class: 'num' }, n.selects === null ? '–' : String(n.selects)));
      tr.appendChild(el('td', { class: 'num qps' }, fmtRate(lastQps[n.id])));
      tbody.appendChild(tr);
    });
  }

  function card(label, used, total) {
    var c = el('div', { class: 'card' });
    c.appendChild(el('div', { class: 'muted small' }, label));
    c.appendChild(el('div', { class: 'v' }, used === null ? '–' : total === null ? String(used) : used + ' / ' + total));
    if (used !== null && total) {
      var bar = el('div', { class: 'bar' });
      var fill = el('span');
      fill.style.width = Math.min(100, (100 * used) / total).toFixed(1) + '%';
      bar.appendChild(fill);
      c.appendChild(bar);
    }
    return c;
  }

  function renderPool(d) {
    var pool = document.getElementById('pool');
    pool.textContent = '';
    pool.appendChild(card('Client slots in use', d.pool.clientsUsed, d.pool.clientsTotal));
    pool.appendChild(card('Backend connections', d.pool.backendsUsed, d.pool.backendsTotal));
    var up = d.nodes.filter(function (n) { return n.status === 'up' || n.status === 'waiting'; }).length;
    pool.appendChild(card('Nodes up', up, d.nodes.length));
  }

  function plotOpts(el, title, fmt) {
    return {
      width: Math.max(260, el.clientWidth),
      height: 220,
      // At least the last minute on the x axis, so one or two samples do not span years.
      scales: { x: { time: true, range: function (u, min, max) { return max - min < 60 ? [max - 60, max] : [min, max]; } } },
      series: [{}].concat(nodeIds.map(function (id, i) {
        return { label: nodeNames[id], stroke: COLORS[i % COLORS.length], width: 2, value: function (u, v) { return fmt(v); } };
      })),
      axes: [{}, { size: 70, values: function (u, vals) { return vals.map(fmt); } }],
      legend: { show: true },
    };
  }

  function buildPlots() {
    var q = document.getElementById('qps-chart');
    var l = document.getElementById('lag-chart');
    if (qpsPlot) qpsPlot.destroy();
    if (lagPlot) lagPlot.destroy();
    q.textContent = '';
    l.textContent = '';
    qpsPlot = new uPlot(plotOpts(q, 'qps', fmtRate), data(qpsSeries), q);
    lagPlot = new uPlot(plotOpts(l, 'lag', lagUnit === 'bytes' ? fmtBytes : fmtSeconds), data(lagSeries), l);
    document.getElementById('lag-title').textContent = 'Replication lag (' + (lagUnit === 'bytes' ? 'bytes of WAL' : 'seconds') + ')';
  }

  function data(series) {
    return [times.slice()].concat(nodeIds.map(function (id) { return series[id].slice(); }));
  }

  function update(d) {
    var t = d.time / 1000;
    var ids = d.nodes.map(function (n) { return n.id; });
    var unit = d.nodes.some(function (n) { return n.lagBytes !== null; }) || !d.nodes.some(function (n) { return n.lagSeconds !== null; }) ? 'bytes' : 'seconds';
    var rebuild = ids.join(',') !== nodeIds.join(',') || unit !== lagUnit || !qpsPlot;
    if (ids.join(',') !== nodeIds.join(',')) {
      times = [];
      qpsSeries = {};
      lagSeries = {};
      prev = null;
    }
    nodeIds = ids;
    lagUnit = unit;
    lastQps = {};
    d.nodes.forEach(function (n) {
      nodeNames[n.id] = 'node ' + n.id + ' (' + n.hostname + ':' + n.port + ')';
      var p = prev && prev.byId[n.id];
      var rate = p && n.statements !== null && p.statements !== null && t > prev.t ? Math.max(0, (n.statements - p.statements) / (t - prev.t)) : null;
      lastQps[n.id] = rate;
      (qpsSeries[n.id] = qpsSeries[n.id] || []).push(rate);
      var lag = n.role === 'primary' ? 0 : unit === 'bytes' ? n.lagBytes : n.lagSeconds;
      (lagSeries[n.id] = lagSeries[n.id] || []).push(lag);
    });
    times.push(t);
    while (times.length > 0 && times[0] < t - WINDOW_S) {
      times.shift();
      nodeIds.forEach(function (id) { qpsSeries[id].shift(); lagSeries[id].shift(); });
    }
    prev = { t: t, byId: {} };
    d.nodes.forEach(function (n) { prev.byId[n.id] = n; });

    renderTable(d);
    renderPool(d);
    if (rebuild) buildPlots();
    else {
      qpsPlot.setData(data(qpsSeries));
      lagPlot.setData(data(lagSeries));
    }
    var primary = d.nodes.filter(function (n) { return n.role === 'primary'; })[0];
    document.getElementById('summary').textContent =
      (d.mode === 'exporter' ? 'Pgpool-II ' : 'pgrouter · Pgpool-II compatible ') + (d.version || '') +
      (d.up ? '' : ' · DOWN') + ' · primary: ' + (primary ? primary.hostname + ':' + primary.port : 'none');
    document.getElementById('updated').textContent = 'updated ' + new Date(d.time).toLocaleTimeString();
    var errors = document.getElementById('errors');
    errors.hidden = d.errors.length === 0;
    errors.textContent = d.errors.join('; ');
    document.body.setAttribute('data-samples', String(times.length));
  }

  function poll() {
    fetch('status.json', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('status.json: HTTP ' + r.status); return r.json(); })
      .then(update)
      .catch(function (e) {
        var errors = document.getElementById('errors');
        errors.hidden = false;
        errors.textContent = String(e && e.message ? e.message : e);
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  window.addEventListener('resize', function () {
    [['qps-chart', qpsPlot], ['lag-chart', lagPlot]].forEach(function (p) {
      if (p[1]) p[1].setSize({ width: Math.max(260, document.getElementById(p[0]).clientWidth), height: 220 });
    });
  });

  /** For tests and the curious: what the charts hold. */
  window.pgrouterStatus = {
    samples: function () { return times.length; },
    qps: function () { return qpsSeries; },
    lag: function () { return lagSeries; },
  };
  poll();
})();
