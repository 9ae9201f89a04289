// The ocdn browser client's shared part: the control plane's API as the
// pages use it (titles, steering, recipes, reports), ids and Resource
// Timing. Loaded before play.js, speed.js and probe.js.
'use strict';

const ocdn = (() => {
  const params = new URLSearchParams(location.search);
  // The control plane is the origin that served the page, unless
  // ?control=URL names another (which must then allow this origin in
  // its cors section).
  const control = (params.get('control') || location.origin).replace(/\/+$/, '');

  async function failure(what, resp) {
    const body = (await resp.text()).trim().slice(0, 300);
    return new Error(`${what}: HTTP ${resp.status}${body ? ': ' + body : ''}`);
  }

  async function getJSON(path) {
    const resp = await fetch(control + path, {cache: 'no-store'});
    if (!resp.ok) throw await failure(path, resp);
    return resp.json();
  }

  // title returns the catalog entries of a title.
  const title = (t) => getJSON('/v1/titles/' + encodeURIComponent(t));

  // steer returns, for one file (title/file), steering's ranked list of
  // {url, appliance, site, reason}, best first.
  async function steer(file, n = 5) {
    const res = await getJSON(`/v1/steer?files=${encodeURIComponent(file)}&n=${n}`);
    const urls = (res.files && res.files[0] && res.files[0].urls) || [];
    if (urls.length === 0) throw new Error(`steering has no appliance for ${file}`);
    return urls;
  }

  // recipe is a probe recipe; its id and signed context go into every
  // report, which is how the ingester knows a browser ran what the
  // control plane issued.
  const recipe = () => getJSON('/v1/recipe');

  // report uploads one report (measure.Report) and returns the answer.
  async function report(rep) {
    const resp = await fetch(control + '/v1/reports', {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(rep), cache: 'no-store'});
    if (!resp.ok) throw await failure('report', resp);
    return resp.json();
  }

  // newID is 32 random hex characters, a report id.
  function newID() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  // withQuery adds key=value to a URL (content URLs ignore queries; a
  // distinct URL per fetch keeps Resource Timing entries apart).
  function withQuery(url, key, value) {
    const u = new URL(url);
    u.searchParams.set(key, value);
    return u.toString();
  }

  // measured marks a content URL as a measurement, which appliances
  // leave out of demand (the query parameter ocdn_measurement: the
  // X-Ocdn-Measurement header the Go clients send would cost a CORS
  // preflight, whose connection the measured fetch would then reuse, so
  // no connect time), and sets key=value to keep the URL unique.
  function measured(url, kind, key, value) {
    return withQuery(withQuery(url, 'ocdn_measurement', kind), key, value);
  }

  // timingOf is the Resource Timing entry of the last fetch of url.
  function timingOf(url) {
    const es = performance.getEntriesByName(url, 'resource');
    return es.length ? es[es.length - 1] : null;
  }

  // A page that measures many fetches needs more than the default 250
  // entries.
  performance.setResourceTimingBufferSize(5000);

  // readAll reads a response body, counting bytes as they arrive (onBytes
  // may be null); it returns the total.
  async function readAll(resp, onBytes) {
    const reader = resp.body.getReader();
    let n = 0;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) return n;
      n += value.length;
      if (onBytes) onBytes(value.length);
    }
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const ms = (x) => Math.round(x * 1000) / 1000;

  function show(id, text) {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function log(text) {
    const el = document.getElementById('log');
    if (!el) return;
    const line = document.createElement('div');
    line.textContent = `${(performance.now() / 1000).toFixed(1)}s ${text}`;
    el.prepend(line);
  }

  return {params, control, getJSON, title, steer, recipe, report, newID, withQuery, measured, timingOf, readAll, sleep, ms, show, log};
})();
