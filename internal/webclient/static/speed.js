// The speed test, fast.com-style and the same method as ocdn speedtest
// (internal/speedtest): steering picks the targets; unloaded latency;
// parallel downloads, one more while the rate still grows by more than
// 10%; ramp-up windows discarded; stop when ten 200 ms windows agree
// within 3% (or at the time limit); loaded latency during the download.
'use strict';

(() => {
  const q = ocdn.params;
  const cfg = {
    title: q.get('title') || 't0000', file: q.get('file') || '',
    minConns: 1, maxConns: Math.min(6, Math.max(1, Number(q.get('max_conns')) || 6)),
    windowMs: 200, adaptEvery: 5, rampWindows: 3, growth: 0.1, stableWindows: 10, tolerance: 0.03,
    maxDurationMs: (Number(q.get('max_seconds')) || 20) * 1000, chunkBytes: 8 << 20, latencyProbes: 5, loadedEveryMs: 250,
  };
  // A browser keeps at most six connections to one server, so more
  // parallel downloads than that would only queue.
  const state = window.ocdnSpeed = {phase: 'starting', result: null, reported: null, error: null, windowsBps: []};
  let seq = 0;

  function fail(msg) {
    state.phase = 'failed';
    state.error = String(msg);
    ocdn.show('state', 'failed');
    ocdn.show('error', state.error);
  }

  // ping is one one-byte request: the time from the request being sent
  // to its first byte, from Resource Timing (the wall clock around fetch
  // when the browser gives no timing).
  async function ping(url) {
    const u = ocdn.measured(url, 'speedtest', 'ping', String(seq++));
    const start = performance.now();
    const resp = await fetch(u, {headers: {Range: 'bytes=0-0'}, cache: 'no-store'});
    await resp.arrayBuffer();
    if (resp.status !== 206 && resp.status !== 200) throw new Error(`${url}: HTTP ${resp.status}`);
    const e = ocdn.timingOf(u);
    const d = e && e.responseStart > 0 && e.requestStart > 0 ? e.responseStart - e.requestStart : performance.now() - start;
    return {ms: d, start: Date.now() - (performance.now() - start)};
  }

  const median = (v) => {
    if (!v.length) return 0;
    const s = [...v].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const mean = (v) => v.reduce((a, b) => a + b, 0) / (v.length || 1);

  async function run() {
    let file = cfg.file;
    let size = 0;
    if (!file) {
      const files = await ocdn.title(cfg.title);
      const best = files.reduce((a, b) => (b.size > a.size ? b : a), files[0]);
      file = best.path;
      size = best.size;
    }
    // The best site's appliances, as fast.com measures against the
    // servers nearest in steering's eyes: the figure is the path to that
    // site, not a sum over paths to sites the player would never use.
    const steered = await ocdn.steer(file, 5);
    const targets = steered.filter((t) => t.site === steered[0].site);
    const urls = targets.map((t) => t.url);
    ocdn.show('servers', targets.map((t) => `${t.appliance} (${t.site})`).join(', '));
    const recipe = await ocdn.recipe().catch((e) => { ocdn.log('no recipe, so no report: ' + e.message); return null; });
    const chunk = size > 0 ? Math.min(cfg.chunkBytes, size) : cfg.chunkBytes;
    const started = Date.now();

    state.phase = 'latency';
    ocdn.show('state', 'measuring latency');
    await ping(urls[0]); // warm the connection
    const unloaded = [];
    for (let i = 0; i < cfg.latencyProbes; i++) unloaded.push(await ping(urls[0]));
    const unloadedMs = median(unloaded.map((p) => p.ms));
    ocdn.show('unloaded', `${unloadedMs.toFixed(1)} ms`);

    state.phase = 'download';
    ocdn.show('state', 'downloading');
    const ctrl = new AbortController();
    let counter = 0, conns = 0, failure = null;
    const download = async (url) => {
      while (!ctrl.signal.aborted) {
        const resp = await fetch(ocdn.measured(url, 'speedtest', 'dl', String(seq++)),
          {headers: {Range: `bytes=0-${chunk - 1}`}, cache: 'no-store', signal: ctrl.signal});
        if (resp.status !== 206 && resp.status !== 200) throw new Error(`${url}: HTTP ${resp.status}`);
        await ocdn.readAll(resp, (n) => { counter += n; });
      }
    };
    const addConn = () => {
      const u = urls[conns % urls.length];
      conns++;
      download(u).catch((e) => { if (!ctrl.signal.aborted) failure = e; });
    };
    for (let i = 0; i < cfg.minConns; i++) addConn();

    const loaded = [];
    const loadedLoop = (async () => {
      while (!ctrl.signal.aborted) {
        await ocdn.sleep(cfg.loadedEveryMs);
        if (ctrl.signal.aborted) break;
        try { loaded.push(await ping(urls[0])); } catch (e) { /* a busy path; the next one counts */ }
      }
    })();

    const start = performance.now();
    const wins = [];
    let last = start, lastBytes = 0, rampEnd = cfg.rampWindows, adapting = true, prevPhase = 0, estFrom = -1, stable = false;
    while (estFrom < 0) {
      await ocdn.sleep(cfg.windowMs);
      if (failure) { ctrl.abort(); throw failure; }
      const now = performance.now();
      const b = counter;
      const w = {bytes: b - lastBytes, dur: now - last};
      last = now;
      lastBytes = b;
      wins.push(w);
      const rateBps = w.bytes * 8 / (w.dur / 1000);
      state.windowsBps.push(rateBps);
      ocdn.show('speed', (rateBps / 1e6).toFixed(1));
      ocdn.show('conns', String(conns));
      ocdn.show('bytes', `${(b / 1e6).toFixed(1)} MB`);
      const n = wins.length;
      if (adapting && n - rampEnd >= cfg.adaptEvery) {
        const span = wins.slice(rampEnd);
        const phase = span.reduce((a, x) => a + x.bytes, 0) * 8 / (span.reduce((a, x) => a + x.dur, 0) / 1000);
        if (conns < cfg.maxConns && (prevPhase === 0 || phase > prevPhase * (1 + cfg.growth))) {
          prevPhase = phase;
          addConn();
          rampEnd = n + cfg.rampWindows;
        } else {
          adapting = false;
        }
      }
      if (!adapting && n - rampEnd >= cfg.stableWindows) {
        const tail = state.windowsBps.slice(n - cfg.stableWindows);
        const m = mean(tail);
        if (tail.every((r) => r >= m * (1 - cfg.tolerance) && r <= m * (1 + cfg.tolerance))) {
          stable = true;
          estFrom = n - cfg.stableWindows;
        }
      }
      if (estFrom < 0 && now - start >= cfg.maxDurationMs) estFrom = Math.min(rampEnd, n - 1);
    }
    ctrl.abort();
    await loadedLoop;
    const est = wins.slice(estFrom);
    const estBytes = est.reduce((a, x) => a + x.bytes, 0), estMs = est.reduce((a, x) => a + x.dur, 0);
    const res = state.result = {
      download_bps: estBytes * 8 / (estMs / 1000), stable, connections: conns, bytes: counter,
      duration_ms: performance.now() - start, estimate_windows: est.length,
      unloaded_latency_ms: unloadedMs, loaded_latency_ms: median(loaded.map((p) => p.ms)),
      targets: urls, servers: targets.map((t) => ({appliance: t.appliance, site: t.site})),
    };
    state.phase = 'done';
    ocdn.show('speed', (res.download_bps / 1e6).toFixed(1));
    ocdn.show('loaded', `${res.loaded_latency_ms.toFixed(1)} ms`);
    ocdn.show('state', `${stable ? 'stable' : 'not stable by the time limit'}; ${conns} connections, ${(res.duration_ms / 1000).toFixed(1)} s`);
    if (!recipe) return;

    // Stored like a probe: the estimate as one throughput pulse (target
    // "speedtest"), each latency sample as an http_ttfb pulse (targets
    // "speedtest-unloaded" and "speedtest-loaded").
    const first = targets[0];
    const pulse = (target, type, i, startMs, extra) => Object.assign(
      {target, appliance: first.appliance, site: first.site, type, seq: i, start: new Date(startMs).toISOString(), status: 'ok'}, extra);
    const pulses = [pulse('speedtest', 'throughput', 0, started, {
      duration_ms: ocdn.ms(res.duration_ms), bytes: res.bytes, throughput_bps: ocdn.ms(res.download_bps)})];
    unloaded.forEach((p) => pulses.push(pulse('speedtest-unloaded', 'http_ttfb', pulses.length, p.start, {ttfb_ms: ocdn.ms(p.ms), duration_ms: ocdn.ms(p.ms)})));
    loaded.slice(0, 900).forEach((p) => pulses.push(pulse('speedtest-loaded', 'http_ttfb', pulses.length, p.start, {ttfb_ms: ocdn.ms(p.ms), duration_ms: ocdn.ms(p.ms)})));
    try {
      state.reported = await ocdn.report({id: ocdn.newID(), recipe: recipe.id, context: recipe.context,
        client_time: new Date(started).toISOString(), pulses});
      ocdn.show('report', 'stored');
    } catch (e) {
      state.reportError = e.message;
      ocdn.show('report', 'refused: ' + e.message);
    }
  }

  run().catch((e) => fail(e.message));
})();
