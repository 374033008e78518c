// /ws/live from the browser: a token from POST /api/v1/ws-token opens the
// stream; a dropped stream reconnects by itself (1 s, 2 s, ... 15 s) and
// resumes from the last sequence number it saw.
import { api } from './api.js';

export const HISTORY = 300; // seconds of sparkline kept per tile
export const FEED_MAX = 200;

/** The numbers each tile shows, from a frame's or snapshot's stats. */
export function tileValues(s) {
  return {
    rps: s?.rps ?? 0,
    tokens: s?.tokens_per_second?.total ?? 0,
    cost: s?.cost_per_second ?? 0,
    errors: s?.error_rate ?? 0,
    p95: s?.latency_ms?.p95 ?? null,
  };
}

/**
 * Apply one stream message to a plain state object
 * {seq, stats, series, feed, events, generation}.  Pure, for tests.
 * Returns the alert/budget/notification events the message carried.
 */
export function applyMessage(st, m) {
  if (!m || typeof m !== 'object') return [];
  if (m.type === 'snapshot') {
    st.series = { rps: [], tokens: [], cost: [], errors: [], p95: [] };
    st.feed = Array.isArray(m.feed) ? m.feed.slice(0, FEED_MAX) : [];
  }
  if (m.type !== 'snapshot' && m.type !== 'frame') return [];
  if (typeof m.seq === 'number') st.seq = m.seq;
  st.generation = m.generation;
  st.sentMs = m.sent_ms;
  if (m.stats) {
    st.stats = m.stats;
    const v = tileValues(m.stats);
    for (const k of Object.keys(st.series)) {
      const a = st.series[k];
      a.push(v[k]);
      if (a.length > HISTORY) a.splice(0, a.length - HISTORY);
    }
  }
  if (m.type === 'frame' && Array.isArray(m.feed) && m.feed.length) {
    // A frame may repeat entries a snapshot already had: one row per id.
    const seen = new Set(m.feed.map((e) => e.id));
    st.feed = m.feed.concat(st.feed.filter((e) => !seen.has(e.id))).slice(0, FEED_MAX);
  }
  return Array.isArray(m.events) ? m.events : [];
}

/**
 * A relay stream that reopens itself: a token from POST /api/v1/ws-token,
 * then `path` (e.g. '/ws/live', '/ws/crosstalk/ID'); a dropped stream
 * reconnects after 1 s, 2 s, ... 15 s, with `since=` the last seq seen.
 * onMessage(m) gets every parsed message.
 */
export class RelaySocket {
  online = $state(false);
  connecting = $state(false);
  error = $state('');
  lastSeq = 0;

  #ws = null;
  #timer = 0;
  #backoff = 1000;
  #stopped = true;
  #gen = 0; // bumped by stop(): an #open() begun before it opens nothing

  constructor(path, { query = '', onMessage = () => {} } = {}) {
    this.path = path;
    this.query = query;
    this.onMessage = onMessage;
  }

  start() {
    this.#stopped = false;
    this.#open();
  }

  stop() {
    this.#stopped = true;
    this.#gen++;
    clearTimeout(this.#timer);
    if (this.#ws) this.#ws.close(1000, 'bye');
    this.#ws = null;
    this.online = false;
    this.connecting = false;
  }

  async #open() {
    if (this.#stopped) return;
    const gen = this.#gen;
    this.connecting = true;
    let token;
    try {
      token = (await api('/api/v1/ws-token', { method: 'POST' })).token;
    } catch (e) {
      if (gen !== this.#gen) return;
      this.error = e.message;
      this.connecting = false;
      if (e.status !== 401) this.#retry();
      return;
    }
    // Stopped (and perhaps started again) while the token came: this
    // attempt is over, or two sockets would be open and one never closed.
    if (gen !== this.#gen || this.#stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let url = `${proto}//${location.host}${this.path}?token=${encodeURIComponent(token)}`;
    if (this.query) url += '&' + this.query;
    if (this.lastSeq) url += '&since=' + this.lastSeq;
    const ws = new WebSocket(url);
    this.#ws = ws;
    ws.onopen = () => {
      this.online = true;
      this.connecting = false;
      this.error = '';
      this.#backoff = 1000;
    };
    ws.onmessage = (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (m && typeof m.seq === 'number') this.lastSeq = m.seq;
      this.onMessage(m);
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.online = false;
      this.connecting = false;
      if (ev.code !== 1000) this.error = ev.reason || 'connection lost';
      this.#retry();
    };
  }

  #retry() {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#open(), this.#backoff);
    this.#backoff = Math.min(this.#backoff * 2, 15000);
  }
}

/** /ws/live: the dashboard's numbers, sparklines, feed and events. */
export class LiveStream {
  stats = $state(null);
  seq = $state(0);
  sentMs = $state(0);
  generation = $state(null);
  series = $state({ rps: [], tokens: [], cost: [], errors: [], p95: [] });
  feed = $state([]);

  #listeners = new Set();
  #sock = new RelaySocket('/ws/live', { onMessage: (m) => this.#message(m) });

  get online() {
    return this.#sock.online;
  }
  get connecting() {
    return this.#sock.connecting;
  }
  get error() {
    return this.#sock.error;
  }

  /** fn(events) for every message's alert/budget/notification events. */
  onEvents(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  start() {
    this.#sock.start();
  }

  stop() {
    this.#sock.stop();
  }

  #message(m) {
    const st = {
      seq: this.seq,
      stats: this.stats,
      series: $state.snapshot(this.series),
      feed: this.feed,
      generation: this.generation,
      sentMs: this.sentMs,
    };
    const events = applyMessage(st, m);
    this.seq = st.seq;
    this.stats = st.stats;
    this.series = st.series;
    this.feed = st.feed;
    this.generation = st.generation;
    this.sentMs = st.sentMs;
    if (events.length) for (const fn of this.#listeners) fn(events);
  }
}
