// ocdn console: refreshes the live part of each page (the server renders
// it; this script only swaps the fresh copy in) and draws the plots with
// uPlot. Everything works without it except live updates and plots.
(function () {
  'use strict';
  var body = document.body;
  var page = body.dataset.page;
  var every = Math.max(1, Number(body.dataset.refresh) || 5) * 1000;
  var paused = false;
  var plots = {};
  var status = document.getElementById('live-status');
  // Distinguishable colours with at least 3:1 contrast on white.
  var palette = ['#0b57d0', '#c5221f', '#146c2e', '#8a4b00', '#7627bb', '#00748a', '#b0006e', '#3c4043'];

  function say(msg) { if (status) status.textContent = msg; }

  function points(s) {
    var n = 0;
    for (var i = 1; i < s.data.length; i++) {
      for (var j = 0; j < s.data[i].length; j++) if (s.data[i][j] !== null) n++;
    }
    return n;
  }

  function draw(all) {
    var figs = document.querySelectorAll('figure[data-series]');
    for (var k = 0; k < figs.length; k++) {
      var fig = figs[k], name = fig.dataset.series, s = all[name];
      if (!s) continue;
      var n = points(s);
      fig.dataset.points = String(n);
      var empty = fig.querySelector('.plot-empty');
      if (empty) empty.hidden = n > 0;
      if (typeof uPlot === 'undefined' || n === 0) continue;
      var area = fig.querySelector('.plot-area');
      var key = s.labels.join('\u0000');
      var p = plots[name];
      if (p && p.key !== key) { p.plot.destroy(); p = null; }
      if (!p) {
        var opts = {
          width: Math.max(320, area.clientWidth || 600), height: 240,
          scales: { x: { time: true } },
          axes: [{}, { label: s.unit }],
          series: [{}].concat(s.labels.map(function (l, i) {
            return { label: l, stroke: palette[i % palette.length], width: 2 };
          }))
        };
        p = { key: key, plot: new uPlot(opts, s.data, area) };
        plots[name] = p;
      } else {
        p.plot.setData(s.data);
      }
      fig.dataset.rendered = 'true';
    }
  }

  function refreshPlots() {
    if (!document.querySelector('figure[data-series]')) return Promise.resolve();
    return fetch('/ui/series.json?page=' + encodeURIComponent(page), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (r.status === 401) { location.reload(); throw new Error('signed out'); }
        if (!r.ok) throw new Error('plot data: ' + r.status);
        return r.json();
      })
      .then(draw);
  }

  function refreshLive() {
    var live = document.getElementById('live');
    if (!live) return Promise.resolve();
    var active = document.activeElement;
    var inside = active && live.contains(active);
    // Never pull a field out from under someone typing in it.
    if (inside && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return Promise.resolve();
    return fetch(location.href, { credentials: 'same-origin', headers: { 'X-Console-Live': '1' } })
      .then(function (r) {
        // A session that ended sends us to the login page: follow it.
        if (r.redirected || r.status === 401) { location.reload(); throw new Error('signed out'); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.getElementById('live');
        if (!fresh) return;
        var focusId = inside ? active.id : '';
        live.replaceWith(document.adoptNode(fresh));
        if (focusId) {
          var f = document.getElementById(focusId);
          if (f) f.focus();
        }
        var upd = doc.getElementById('updated'), mine = document.getElementById('updated');
        if (upd && mine) { mine.textContent = upd.textContent; mine.setAttribute('datetime', upd.getAttribute('datetime')); }
      });
  }

  function tick() {
    if (paused || document.hidden) { setTimeout(tick, every); return; }
    Promise.all([refreshLive(), refreshPlots()])
      .then(function () { say(''); }, function (e) { say('Live update failed: ' + e.message); })
      .then(function () { setTimeout(tick, every); });
  }

  var toggle = document.getElementById('live-toggle');
  if (toggle) {
    toggle.addEventListener('click', function () {
      paused = !paused;
      toggle.setAttribute('aria-pressed', String(paused));
      toggle.textContent = paused ? 'Resume live updates' : 'Pause live updates';
      say(paused ? 'Live updates paused.' : 'Live updates resumed.');
    });
  }
  if (toggle) {
    refreshPlots().catch(function (e) { say('Plots failed: ' + e.message); });
    setTimeout(tick, every);
  }
})();
