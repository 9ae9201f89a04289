// The player: hls.js plays a title's master playlist from the URL list
// steering hands out, failing over down the list when a request fails
// or times out, asking steering again when the whole list has failed
// (as the Go player does), and reports the session's QoE at the end.
'use strict';

(() => {
  const q = ocdn.params;
  const titleName = q.get('title') || 'hls0000';
  // ?rate=N plays N times faster (tests); ?buffer=S caps the buffer
  // ahead, so the player keeps fetching as it plays (as the lab's
  // players do) instead of loading the whole title at once.
  const rate = Math.min(16, Math.max(0.25, Number(q.get('rate')) || 1));
  const maxBuffer = Math.max(1, Number(q.get('buffer')) || 6);
  // ?urls=N asks steering for N URLs (default 5); ?patience=S keeps
  // asking steering again for up to S seconds once a list has run out
  // (default 30, the Go player's ResteerPatience).
  const listLength = Math.min(16, Math.max(1, Math.floor(Number(q.get('urls')) || 5)));
  const patienceMs = 1000 * Math.max(0, Number(q.get('patience')) || 30);

  const state = window.ocdnPlayer = {
    phase: 'starting', title: titleName, urls: [], list: 0, current: 0, servedBy: [], failovers: 0, resteers: 0,
    startupMs: null, rebuffers: 0, rebufferMs: 0, switches: 0, levels: [], qoe: null, reported: null, error: null, events: [],
  };
  ocdn.show('title', titleName);
  const video = document.getElementById('video');
  const t0 = performance.now();

  function fail(msg) {
    state.phase = 'failed';
    state.error = String(msg);
    ocdn.show('state', 'failed');
    ocdn.show('error', state.error);
    ocdn.log('error: ' + state.error);
  }

  function event(text) {
    state.events.push(text);
    ocdn.log(text);
  }

  if (typeof Hls === 'undefined') {
    fail('the player library (hls.js) is missing from this build: run make webclient-assets, then rebuild');
    return;
  }
  if (!Hls.isSupported()) {
    fail('this browser has no Media Source Extensions for H.264');
    return;
  }

  // bases are the URL list without the master playlist's name: the
  // directory every playlist and rendition of the title is under on
  // each appliance (the token covers the title, so relative URLs work).
  // hls.js resolves every URL against the master playlist it loaded
  // from the first list, so rebase knows the bases of every list so far.
  let bases = [];
  const known = new Set();
  function rebase(url, i) {
    for (const b of known) {
      if (url.startsWith(b)) return bases[i] + url.slice(b.length);
    }
    return url;
  }
  function served(u) {
    if (state.servedBy[state.servedBy.length - 1] !== u.appliance) {
      state.servedBy.push(u.appliance);
      ocdn.show('appliance', `${u.appliance} (${u.site})`);
    }
  }
  // failover moves the session to the next URL after a failure at
  // URL i of steering answer list; false when that list is exhausted.
  // Several requests in flight may fail at once: only the first moves
  // the session.
  function failover(list, i, why) {
    if (state.list !== list || state.current > i) return true;
    if (i + 1 >= bases.length) return false;
    state.current = i + 1;
    state.failovers++;
    ocdn.show('failovers', String(state.failovers));
    event(`failover: ${state.urls[i].appliance} ${why}; now ${state.urls[i + 1].appliance}`);
    return true;
  }

  // resteer asks steering for a new list once every URL of the current
  // one has failed: at once the first time, then after 250 ms doubling
  // to 4 s (a new list that fails too, or steering not answering), as
  // long as patienceMs has not passed since the first list ran out, not
  // counting time spent waiting for steering's answers; bytes arriving
  // (served) end the outage. It resolves true once a new list is in
  // place, false when patience ran out. Requests failing meanwhile share
  // the one in progress.
  let master = '', masterName = '';
  let outage = null; // {since, asking, asks, tried: [appliances of each list]}
  let resteering = null;
  function resteer(why) {
    if (resteering) return resteering;
    if (!outage) outage = {since: performance.now(), asking: 0, asks: 0, tried: []};
    const o = outage;
    o.tried.push(state.urls.map((u) => u.appliance).join(' '));
    resteering = (async () => {
      for (;;) {
        const wait = o.asks === 0 ? 0 : Math.min(250 * 2 ** Math.min(o.asks - 1, 4), 4000);
        if (performance.now() - o.since - o.asking + wait > patienceMs) {
          event(`every URL of ${o.tried.length} steering answers failed (${o.tried.join('; ')}): giving up`);
          return false;
        }
        if (wait) await new Promise((r) => setTimeout(r, wait));
        o.asks++;
        const asked = performance.now();
        let urls = null;
        try {
          urls = await ocdn.steer(master, listLength);
        } catch (e) {
          event(`steering again: ${e.message}`);
        }
        o.asking += performance.now() - asked;
        if (!urls) continue;
        setList(urls);
        // Moving to a new list is a failover too (as the Go player
        // counts it); re-steers are counted apart as well.
        state.resteers++;
        state.failovers++;
        ocdn.show('resteers', String(state.resteers));
        ocdn.show('failovers', String(state.failovers));
        event(`re-steered after every URL failed (${why}): ${urls.map((u) => u.appliance).join(' → ')}`);
        return true;
      }
    })().finally(() => { resteering = null; });
    return resteering;
  }
  // setList makes urls the session's list, from its first URL.
  function setList(urls) {
    state.urls = urls;
    state.list++;
    state.current = 0;
    bases = urls.map((u) => u.url.slice(0, u.url.length - masterName.length));
    bases.forEach((b) => known.add(b));
    ocdn.show('urls', urls.map((u) => u.appliance).join(' → '));
  }

  // FailoverLoader is hls.js's own loader behind the failover: each
  // attempt is a fresh inner loader (hls.js loaders are single use) at
  // the session's current URL. hls.js keeps the stats object of the
  // loader it made (as the fragment's stats) and estimates bandwidth from
  // it, so every attempt reports into that one object, restarted.
  const Base = Hls.DefaultConfig.loader;
  class FailoverLoader {
    constructor(config) {
      this.config = config;
      this.inner = new Base(config);
      this.stats = this.inner.stats;
    }
    get context() { return this.inner.context; }
    load(context, config, callbacks) {
      const attempt = (first) => {
        const list = state.list, i = state.current, u = state.urls[i];
        if (!first) {
          this.inner = new Base(this.config);
          const s = this.stats;
          Object.assign(s, {loaded: 0, total: 0, chunkCount: 0, aborted: false, loading: {start: 0, first: 0, end: 0}});
          this.inner.stats = s;
        }
        // retry moves on after a failure: down the list, or to a new
        // list from steering; giveUp when there is none.
        const retry = (why, giveUp) => {
          const again = () => {
            this.inner.destroy();
            attempt(false);
          };
          if (failover(list, i, why)) {
            again();
            return;
          }
          resteer(why).then((ok) => {
            if (this.aborted) return;
            if (ok) again();
            else giveUp();
          });
        };
        this.inner.load(Object.assign({}, context, {url: rebase(context.url, i)}), config, {
          onSuccess: (resp, stats, ctx, net) => {
            outage = null;
            served(u);
            callbacks.onSuccess(resp, stats, context, net);
          },
          onProgress: callbacks.onProgress && ((stats, ctx, data, net) => callbacks.onProgress(stats, context, data, net)),
          onError: (err, ctx, net, stats) => {
            retry(`failed (${err.code || 'network error'})`, () => callbacks.onError(err, context, net, stats));
          },
          onTimeout: (stats, ctx, net) => {
            retry('timed out', () => callbacks.onTimeout(stats, context, net));
          },
          onAbort: callbacks.onAbort && ((stats, ctx, net) => callbacks.onAbort(stats, context, net)),
        });
      };
      attempt(true);
    }
    abort() {
      this.aborted = true;
      this.inner.abort();
    }
    destroy() {
      this.aborted = true;
      this.inner.destroy();
    }
  }

  // Our loader fails over at once and asks steering again; hls.js's own
  // retries come after that gave up.
  const policy = (ttfb, total) => ({default: {maxTimeToFirstByteMs: ttfb, maxLoadTimeMs: total,
    timeoutRetry: {maxNumRetry: 1, retryDelayMs: 0, maxRetryDelayMs: 0},
    errorRetry: {maxNumRetry: 1, retryDelayMs: 500, maxRetryDelayMs: 1000}}});

  // Quality of experience, as the Go player records it.
  let playedSecs = 0, bitSum = 0, waitingSince = null, started = false;
  function levelKbps(l) {
    const lv = state.levels[l];
    return lv ? lv.kbps : 0;
  }

  async function start() {
    const files = await ocdn.title(titleName);
    const m = files.find((f) => f.path.endsWith('/index.m3u8')) || files.find((f) => f.kind === 'playlist');
    if (!m) throw new Error(`title ${titleName} has no playlist: only media titles (hls0000, …) play in a browser`);
    master = m.path;
    masterName = master.slice(master.indexOf('/') + 1);
    setList(await ocdn.steer(master, listLength));
    // The recipe's signed context lets the QoE report in; a player
    // without one still plays.
    state.recipe = await ocdn.recipe().catch((e) => { event('no recipe, so no report: ' + e.message); return null; });

    const hls = new Hls({
      loader: FailoverLoader, maxBufferLength: maxBuffer, maxMaxBufferLength: maxBuffer, backBufferLength: 10,
      manifestLoadPolicy: policy(3000, 8000), playlistLoadPolicy: policy(3000, 8000), fragLoadPolicy: policy(3000, 15000),
    });
    state.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, (e, d) => {
      state.levels = d.levels.map((l) => ({height: l.height, kbps: Math.round((l.averageBitrate || l.bitrate) / 1000)}));
      video.playbackRate = rate;
      video.play().catch((err) => fail('play: ' + err.message));
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (e, d) => {
      if (state.levelSwitched) state.switches++;
      state.levelSwitched = true;
      const l = state.levels[d.level];
      ocdn.show('level', l ? `${l.height}p, ${l.kbps} kbit/s` : String(d.level));
    });
    hls.on(Hls.Events.FRAG_CHANGED, (e, d) => {
      playedSecs += d.frag.duration;
      bitSum += d.frag.duration * levelKbps(d.frag.level);
    });
    hls.on(Hls.Events.ERROR, (e, d) => {
      event(`hls.js ${d.fatal ? 'fatal ' : ''}error: ${d.details}`);
      if (d.fatal) fail(`playback stopped: ${d.details}`);
    });
    hls.loadSource(bases[0] + masterName);
    hls.attachMedia(video);
  }

  video.addEventListener('playing', () => {
    video.playbackRate = rate;
    if (!started) {
      started = true;
      state.startupMs = performance.now() - t0;
      ocdn.show('startup', `${state.startupMs.toFixed(0)} ms`);
    }
    if (waitingSince !== null) {
      state.rebufferMs += performance.now() - waitingSince;
      waitingSince = null;
    }
    state.phase = 'playing';
    ocdn.show('state', 'playing');
  });
  video.addEventListener('waiting', () => {
    if (!started || video.seeking || waitingSince !== null) return;
    waitingSince = performance.now();
    state.rebuffers++;
    ocdn.show('rebuffers', String(state.rebuffers));
    ocdn.show('state', 'rebuffering');
  });
  video.addEventListener('timeupdate', () => {
    const b = video.buffered;
    const ahead = b.length ? b.end(b.length - 1) - video.currentTime : 0;
    state.position = video.currentTime;
    ocdn.show('buffer', `${ahead.toFixed(1)} s ahead at ${video.currentTime.toFixed(1)} s of ${(video.duration || 0).toFixed(1)} s`);
  });
  video.addEventListener('ended', async () => {
    state.qoe = {
      startup_ms: ocdn.ms(state.startupMs || 0), rebuffers: state.rebuffers, rebuffer_ms: ocdn.ms(state.rebufferMs),
      avg_bitrate_kbps: playedSecs ? ocdn.ms(bitSum / playedSecs) : 0, switches: state.switches,
      failovers: state.failovers, served_by: state.servedBy.slice(0, 64), duration_ms: ocdn.ms(performance.now() - t0),
    };
    state.phase = 'ended';
    ocdn.show('state', 'ended');
    event(`ended: ${JSON.stringify(state.qoe)}`);
    if (!state.recipe) return;
    try {
      state.reported = await ocdn.report({id: ocdn.newID(), recipe: state.recipe.id, context: state.recipe.context,
        client_time: new Date(Date.now() - (performance.now() - t0)).toISOString(), pulses: [], qoe: state.qoe});
      ocdn.show('report', 'stored');
    } catch (e) {
      state.reportError = e.message;
      ocdn.show('report', 'refused: ' + e.message);
    }
  });

  start().catch((e) => fail(e.message));
})();
