// The browser probe, after Netflix's Probnik: the control plane chooses
// the targets and pulses (GET /v1/recipe); the page runs the pulses of
// each target in sequence, in the (shuffled) order the recipe gives,
// and takes each pulse's DNS, connect, TLS and first-byte times from
// Resource Timing, which the appliances open to the page with
// Timing-Allow-Origin. A browser reuses connections, so a pulse after
// the first to a target may have no connect time: then connect_ms is
// left out rather than reported as zero.
//
// A dns pulse is Odin's browser measurement: one byte fetched from a
// name no one asked for before, p-<nonce>.<the appliance's name> (its
// certificate covers one label beneath its names), so that the
// resolver must ask the CDN's authoritative server, which logs the
// nonce with the resolver that asked; the report names the nonce, and
// the control plane joins the two. Its dns_ms is Resource Timing's
// lookup time, left out when the browser did not resolve the name
// itself (a SOCKS5 proxy resolves for it, as in the lab).
'use strict';

(() => {
  const state = window.ocdnProbe = {phase: 'starting', recipe: null, report: null, reported: null, error: null};

  function fail(msg) {
    state.phase = 'failed';
    state.error = String(msg);
    ocdn.show('state', 'failed');
    ocdn.show('error', state.error);
  }

  const positive = (x) => (x > 0 ? ocdn.ms(x) : undefined);

  // family is the address family a target's URL reaches its appliance
  // over, as the Go probe has it (probe.targetFamily): the recipe's, else
  // the address's, else the name's ipv4-/ipv6- label.
  function family(target) {
    if (target.family) return target.family;
    const host = new URL(target.url).hostname;
    if (host.startsWith('[')) return 'ipv6';
    if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return 'ipv4';
    if (host.startsWith('ipv4-')) return 'ipv4';
    if (host.startsWith('ipv6-')) return 'ipv6';
    return undefined;
  }

  // nonce is 16 characters of [a-z2-7] (80 random bits), as
  // dnsname.NewNonce makes them: no two pulses share a name.
  function nonce() {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => alphabet[x & 31]).join('');
  }

  async function pulse(rec, target, type, seq) {
    const p = {target: target.id, appliance: target.appliance, site: target.site, type, seq,
      start: new Date().toISOString(), duration_ms: 0, status: 'ok', family: family(target)};
    if (type === 'tls_handshake' && !target.url.startsWith('https:')) {
      return Object.assign(p, {status: 'error', error: 'not https'});
    }
    let base = target.url;
    if (type === 'dns') {
      const u = new URL(target.url);
      if (u.hostname.startsWith('[') || /^\d+\.\d+\.\d+\.\d+$/.test(u.hostname)) {
        return Object.assign(p, {status: 'error', error: "dns: the target's url has an IP address, not a name to resolve"});
      }
      p.nonce = nonce();
      u.hostname = `p-${p.nonce}.${u.hostname}`;
      base = u.toString();
    }
    const url = ocdn.measured(base, 'probe', 'pulse', `${rec.id}-${seq}`);
    const range = type === 'throughput' ? `bytes=0-${(target.range_bytes || 1 << 20) - 1}` : 'bytes=0-0';
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), rec.pulse_timeout_ms || 5000);
    const t0 = performance.now();
    let bytes = 0;
    try {
      const resp = await fetch(url, {headers: {Range: range}, cache: 'no-store', signal: ctrl.signal});
      bytes = await ocdn.readAll(resp, null);
      p.http_status = resp.status;
      p.appliance = resp.headers.get('X-Ocdn-Appliance') || target.appliance;
      if (resp.status !== 206 && resp.status !== 200) Object.assign(p, {status: 'error', error: `HTTP ${resp.status}`});
    } catch (e) {
      Object.assign(p, ctrl.signal.aborted ? {status: 'timeout'} : {status: 'error', error: String(e.message).slice(0, 200)});
    } finally {
      clearTimeout(timer);
    }
    p.duration_ms = ocdn.ms(performance.now() - t0);
    const e = ocdn.timingOf(url);
    if (e) {
      p.dns = positive(e.domainLookupEnd - e.domainLookupStart);
      if (type === 'dns') p.dns_ms = p.dns;
      const tlsStart = e.secureConnectionStart > 0 ? e.secureConnectionStart : e.connectEnd;
      p.connect_ms = positive(tlsStart - e.connectStart);
      p.tls_ms = e.secureConnectionStart > 0 ? positive(e.connectEnd - e.secureConnectionStart) : undefined;
      if (type !== 'tcp_connect' && e.requestStart > 0 && e.responseStart > 0) p.ttfb_ms = ocdn.ms(e.responseStart - e.requestStart);
      if (type === 'throughput' && p.status === 'ok' && e.responseEnd > e.responseStart) {
        p.bytes = bytes;
        p.throughput_bps = ocdn.ms(bytes * 8 / ((e.responseEnd - e.responseStart) / 1000));
      }
    }
    return p;
  }

  function row(p) {
    const tr = document.createElement('tr');
    const cells = [p.seq, p.target, p.site, p.type, p.status + (p.error ? ` (${p.error})` : ''), p.dns, p.connect_ms, p.tls_ms,
      p.ttfb_ms, p.duration_ms, p.throughput_bps ? (p.throughput_bps / 1e6).toFixed(1) : undefined];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c === undefined ? '–' : typeof c === 'number' ? String(Math.round(c * 10) / 10) : c;
      tr.appendChild(td);
    }
    document.querySelector('#pulses tbody').appendChild(tr);
  }

  async function run() {
    const rec = state.recipe = await ocdn.recipe();
    state.phase = 'probing';
    ocdn.show('state', `recipe ${rec.id}: ${rec.targets.length} targets × ${rec.pulses} pulses`);
    const clientTime = new Date().toISOString();
    const pulses = [];
    let seq = 0;
    for (const target of rec.targets) {
      for (let i = 0; i < rec.pulses; i++) {
        for (const type of target.types) {
          const p = await pulse(rec, target, type, seq++);
          row(p);
          delete p.dns; // shown; reported as dns_ms by dns pulses only
          pulses.push(p);
          await ocdn.sleep(rec.pulse_delay_ms || 0);
        }
      }
    }
    state.report = {id: ocdn.newID(), recipe: rec.id, context: rec.context, client_time: clientTime, pulses};
    state.phase = 'reporting';
    state.reported = await ocdn.report(state.report);
    state.phase = 'done';
    ocdn.show('state', `done: ${pulses.length} pulses`);
    ocdn.show('report', `stored (${state.reported.pulses} pulses)`);
  }

  run().catch((e) => fail(e.message));
})();
