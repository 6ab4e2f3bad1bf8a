// cases.mjs: random usages for every model of the bundled genai-prices
// catalog, each priced by the package's own calcPrice. Deterministic (seeded
// PRNG). Prints one JSON line per case to stdout:
//   {provider, model, usage, at, js_total, kind, model_id}
// where usage is pg_meter's normalized form (= genai-prices usage keys), at
// is an ISO UTC timestamp passed both to calcPrice ({timestamp}) and to
// meter.cost(at), and kind says why the case exists (random, tier boundary,
// price-constraint boundary). Cases calcPrice refuses (throws or returns
// null) are not printed; they are counted, with their reasons, on stderr.
//
// Usage: node cases.mjs [random_cases_per_model (default 6)] [seed]
//
// Per model: every price-constraint boundary (start_date midnight and 1 ms
// either side; time_of_date window start/end and 1 ms either side, on dates
// either side of the model's start dates) gets a case; every tier start s of
// every price entry gets cases with input_tokens = s-1, s, s+1 (genai-prices
// applies a tier when input_tokens > start); then N random cases.
//
// A usage is built from disjoint "leaf" amounts, one per reported meter, and
// each reported meter is the sum of its own leaf and the leaves of the more
// specific meters within it (the genai-prices unit hierarchy: input_tokens
// includes cache_read_tokens, which includes cache_audio_read_tokens, ...).
// So every usage is consistent (cache tokens <= input tokens,
// cache_write_1h_tokens <= cache_write_tokens, cache_audio_read_tokens <=
// cache_read_tokens and <= input_audio_tokens, audio_seconds >=
// input_audio_seconds, ...). Reported meters are the ones the active price
// entry prices, their ancestors, and sometimes an unpriced one (e.g. cache
// tokens for a model without a cache price: billed as plain input).
import { loadProviders } from '../../scripts/catalog/catalog-lib.mjs';
import { createRequire } from 'node:module';
import { prng } from './prng.mjs';

const require = createRequire(new URL('../../scripts/catalog/package.json', import.meta.url));
const { calcPrice } = require('@pydantic/genai-prices');

const perModel = Number(process.argv[2] ?? 6);
const rand = prng(Number(process.argv[3] ?? 20261124));
const int = (n) => Math.floor(rand() * n);  // 0 .. n-1
const pick = (a) => a[int(a.length)];

// The genai-prices unit table (usage key, price key, per, dimensions); the
// same as src/core/units.cpp without pg_meter's own images/compute_seconds.
const UNITS = [
  ['audio_seconds', 'audio_hours', 3600, { family: 'durations', modality: 'audio' }],
  ['cache_audio_read_tokens', 'cache_audio_read_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'audio', token_type: 'cache_read' }],
  ['cache_audio_write_1h_tokens', 'cache_audio_write_1h_mtok', 1e6, { cache_ttl: '1h', direction: 'input', family: 'tokens', modality: 'audio', token_type: 'cache_write' }],
  ['cache_audio_write_5m_tokens', 'cache_audio_write_5m_mtok', 1e6, { cache_ttl: '5m', direction: 'input', family: 'tokens', modality: 'audio', token_type: 'cache_write' }],
  ['cache_audio_write_tokens', 'cache_audio_write_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'audio', token_type: 'cache_write' }],
  ['cache_image_read_tokens', 'cache_image_read_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'image', token_type: 'cache_read' }],
  ['cache_image_write_1h_tokens', 'cache_image_write_1h_mtok', 1e6, { cache_ttl: '1h', direction: 'input', family: 'tokens', modality: 'image', token_type: 'cache_write' }],
  ['cache_image_write_5m_tokens', 'cache_image_write_5m_mtok', 1e6, { cache_ttl: '5m', direction: 'input', family: 'tokens', modality: 'image', token_type: 'cache_write' }],
  ['cache_image_write_tokens', 'cache_image_write_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'image', token_type: 'cache_write' }],
  ['cache_read_tokens', 'cache_read_mtok', 1e6, { direction: 'input', family: 'tokens', token_type: 'cache_read' }],
  ['cache_text_read_tokens', 'cache_text_read_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'text', token_type: 'cache_read' }],
  ['cache_text_write_1h_tokens', 'cache_text_write_1h_mtok', 1e6, { cache_ttl: '1h', direction: 'input', family: 'tokens', modality: 'text', token_type: 'cache_write' }],
  ['cache_text_write_5m_tokens', 'cache_text_write_5m_mtok', 1e6, { cache_ttl: '5m', direction: 'input', family: 'tokens', modality: 'text', token_type: 'cache_write' }],
  ['cache_text_write_tokens', 'cache_text_write_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'text', token_type: 'cache_write' }],
  ['cache_video_read_tokens', 'cache_video_read_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'video', token_type: 'cache_read' }],
  ['cache_video_write_1h_tokens', 'cache_video_write_1h_mtok', 1e6, { cache_ttl: '1h', direction: 'input', family: 'tokens', modality: 'video', token_type: 'cache_write' }],
  ['cache_video_write_5m_tokens', 'cache_video_write_5m_mtok', 1e6, { cache_ttl: '5m', direction: 'input', family: 'tokens', modality: 'video', token_type: 'cache_write' }],
  ['cache_video_write_tokens', 'cache_video_write_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'video', token_type: 'cache_write' }],
  ['cache_write_1h_tokens', 'cache_write_1h_mtok', 1e6, { cache_ttl: '1h', direction: 'input', family: 'tokens', token_type: 'cache_write' }],
  ['cache_write_5m_tokens', 'cache_write_5m_mtok', 1e6, { cache_ttl: '5m', direction: 'input', family: 'tokens', token_type: 'cache_write' }],
  ['cache_write_tokens', 'cache_write_mtok', 1e6, { direction: 'input', family: 'tokens', token_type: 'cache_write' }],
  ['code_executions', 'code_executions_kcount', 1000, { family: 'tool_calls', tool_type: 'code_execution' }],
  ['input_annotated_document_pages', 'input_annotated_document_kpages', 1000, { direction: 'input', family: 'document_pages', page_type: 'annotated' }],
  ['input_audio_seconds', 'input_audio_hours', 3600, { direction: 'input', family: 'durations', modality: 'audio' }],
  ['input_audio_tokens', 'input_audio_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'audio' }],
  ['input_audio_tool_tokens', 'input_audio_tool_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'audio', token_type: 'tool' }],
  ['input_characters', 'input_mchars', 1e6, { direction: 'input', family: 'characters' }],
  ['input_document_pages', 'input_document_kpages', 1000, { direction: 'input', family: 'document_pages' }],
  ['input_image_tokens', 'input_image_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'image' }],
  ['input_image_tool_tokens', 'input_image_tool_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'image', token_type: 'tool' }],
  ['input_pixels', 'input_gpixels', 1e9, { direction: 'input', family: 'pixels' }],
  ['input_text_messages', 'input_text_messages_kcount', 1000, { direction: 'input', family: 'messages', modality: 'text' }],
  ['input_text_tokens', 'input_text_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'text' }],
  ['input_text_tool_tokens', 'input_text_tool_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'text', token_type: 'tool' }],
  ['input_tokens', 'input_mtok', 1e6, { direction: 'input', family: 'tokens' }],
  ['input_tool_tokens', 'input_tool_mtok', 1e6, { direction: 'input', family: 'tokens', token_type: 'tool' }],
  ['input_video_tokens', 'input_video_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'video' }],
  ['input_video_tool_tokens', 'input_video_tool_mtok', 1e6, { direction: 'input', family: 'tokens', modality: 'video', token_type: 'tool' }],
  ['output_audio_citation_tokens', 'output_audio_citation_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'audio', token_type: 'citation' }],
  ['output_audio_reasoning_tokens', 'output_audio_reasoning_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'audio', token_type: 'reasoning' }],
  ['output_audio_seconds', 'output_audio_hours', 3600, { direction: 'output', family: 'durations', modality: 'audio' }],
  ['output_audio_tokens', 'output_audio_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'audio' }],
  ['output_citation_tokens', 'output_citation_mtok', 1e6, { direction: 'output', family: 'tokens', token_type: 'citation' }],
  ['output_image_citation_tokens', 'output_image_citation_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'image', token_type: 'citation' }],
  ['output_image_reasoning_tokens', 'output_image_reasoning_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'image', token_type: 'reasoning' }],
  ['output_image_tokens', 'output_image_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'image' }],
  ['output_reasoning_tokens', 'output_reasoning_mtok', 1e6, { direction: 'output', family: 'tokens', token_type: 'reasoning' }],
  ['output_text_citation_tokens', 'output_text_citation_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'text', token_type: 'citation' }],
  ['output_text_reasoning_tokens', 'output_text_reasoning_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'text', token_type: 'reasoning' }],
  ['output_text_tokens', 'output_text_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'text' }],
  ['output_tokens', 'output_mtok', 1e6, { direction: 'output', family: 'tokens' }],
  ['output_video_citation_tokens', 'output_video_citation_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'video', token_type: 'citation' }],
  ['output_video_reasoning_tokens', 'output_video_reasoning_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'video', token_type: 'reasoning' }],
  ['output_video_tokens', 'output_video_mtok', 1e6, { direction: 'output', family: 'tokens', modality: 'video' }],
  ['requests', 'requests_kcount', 1000, { family: 'requests' }],
  ['rerank_searches', 'rerank_searches_kcount', 1000, { family: 'rerank' }],
  ['social_searches', 'social_searches_kcount', 1000, { family: 'tool_calls', tool_type: 'social_search' }],
  ['storage_searches', 'storage_searches_kcount', 1000, { family: 'tool_calls', tool_type: 'storage_search' }],
  ['web_searches', 'web_searches_kcount', 1000, { family: 'tool_calls', tool_type: 'web_search' }],
].map(([usage, price, per, dims]) => ({ usage, price, per, dims }));
const byUsage = new Map(UNITS.map((u) => [u.usage, u]));
const byPrice = new Map(UNITS.map((u) => [u.price, u]));
// a within b: b is a or more specific (a's dimensions are a subset of b's)
const within = (a, b) => Object.entries(a.dims).every(([k, v]) => b.dims[k] === v);
// unpriced meters sometimes reported besides the priced ones
const EXTRAS = ['cache_read_tokens', 'cache_write_tokens', 'cache_write_1h_tokens', 'input_audio_tokens',
  'cache_audio_read_tokens', 'input_image_tokens', 'output_audio_tokens', 'output_reasoning_tokens',
  'input_audio_seconds'].map((k) => byUsage.get(k));

// ---- time: the price entry genai-prices uses at a timestamp ----------------
const entriesOf = (model) => (Array.isArray(model.prices) ? model.prices : [{ prices: model.prices }]);
// seconds after UTC midnight of "HH:MM:SS[.fff](Z|+HH:MM|-HH:MM)"
function timeOfDay(s) {
  const m = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (!m) throw new Error(`bad time of day ${s}`);
  const t = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(`0.${m[4] ?? ''}`);
  const off = m[5] === 'Z' ? 0 : (m[6] === '+' ? 1 : -1) * (Number(m[7]) * 60 + Number(m[8])) * 60;
  return (t - off + 86400) % 86400;
}
function activeEntry(model, date) {  // mirrors calcPrice: the last entry whose constraint holds
  const es = entriesOf(model);
  if (!Array.isArray(model.prices)) return 0;
  const sec = date.getUTCHours() * 3600 + date.getUTCMinutes() * 60 + date.getUTCSeconds() + date.getUTCMilliseconds() / 1000;
  for (let i = es.length - 1; i >= 0; i--) {
    const c = es[i].constraint;
    if (!c) return i;
    if (c.start_date !== undefined) {
      if (date >= new Date(c.start_date)) return i;
    } else {
      const a = timeOfDay(c.start_time), b = timeOfDay(c.end_time);
      if (b < a ? sec >= a || sec < b : sec >= a && sec < b) return i;
    }
  }
  return 0;
}
const DAY = 86400000;
const T0 = Date.parse('2023-01-01T00:00:00Z'), T1 = Date.parse('2027-01-01T00:00:00Z');
const randomTime = () => T0 + int(T1 - T0);
// every boundary of a model's price constraints, 1 ms either side too
function boundaryTimes(model) {
  if (!Array.isArray(model.prices)) return [];
  const out = new Set();
  const starts = [];
  for (const e of model.prices) {
    const c = e.constraint;
    if (c?.start_date !== undefined) {
      const t = Date.parse(`${c.start_date}T00:00:00Z`);
      starts.push(t);
      for (const d of [-1, 0, 1, -DAY / 2, 3 * DAY]) out.add(t + d);
    }
  }
  // days on which to try time-of-day windows: either side of each start date
  const days = starts.length ? starts.flatMap((t) => [t - 5 * DAY, t + 5 * DAY]) : [Date.parse('2025-03-10T00:00:00Z')];
  for (const e of model.prices) {
    const c = e.constraint;
    if (c?.start_time === undefined) continue;
    const a = Math.round(timeOfDay(c.start_time) * 1000), b = Math.round(timeOfDay(c.end_time) * 1000);
    const mid = b > a ? (a + b) / 2 : ((a + b + DAY) / 2) % DAY;
    for (const day of days)
      for (const ms of [a - 1, a, a + 1, b - 1, b, b + 1, mid]) out.add(day + ((ms + DAY) % DAY));
  }
  return [...out].sort((x, y) => x - y);
}

// ---- usage ------------------------------------------------------------------
function amount(unit, model) {  // a random leaf amount for a meter
  const f = unit.dims.family;
  if (f === 'tokens') {
    const r = rand();
    return r < 0.12 ? 0 : r < 0.4 ? int(5000) : r < 0.85 ? int(400000) : int(3000000);
  }
  if (f === 'durations') {  // fractional seconds, to the millisecond
    if (model.minimums && rand() < 0.6) return pick([0, 1, 500, 9999, 10000, 10001, int(20000)]);
    return rand() < 0.1 ? 0 : int(rand() < 0.5 ? 60000 : 7200000);
  }
  if (f === 'tool_calls' || f === 'rerank') return rand() < 0.3 ? 0 : int(40);
  if (f === 'document_pages') return rand() < 0.2 ? 0 : int(600);
  if (f === 'messages') return rand() < 0.2 ? 0 : int(5000);
  if (f === 'characters') return rand() < 0.2 ? 0 : int(3000000);
  if (f === 'pixels') return rand() < 0.2 ? 0 : int(500000000);
  return int(1000);
}
// scale (durations are generated in milliseconds)
const emit = (unit, v) => (unit.dims.family === 'durations' ? v / 1000 : v);

// prices: the active price entry; inputTarget: input_tokens wanted, or null
function makeUsage(model, prices, inputTarget) {
  const priced = Object.keys(prices).map((k) => byPrice.get(k)).filter((u) => u && u.usage !== 'requests');
  const reported = new Set(priced);
  if (rand() < 0.3) reported.add(pick(EXTRAS));
  if (rand() < 0.1) reported.add(pick(EXTRAS));
  // general meters (input_tokens, output_tokens, audio_seconds) of every reported one
  for (const u of [...reported])
    for (const g of UNITS)
      if (g !== u && g.usage !== 'requests' && within(g, u) && (g.dims.direction || g.dims.family === 'durations') &&
          Object.keys(g.dims).length === 2 && g.dims.family === u.dims.family)
        reported.add(g);
  if (inputTarget !== null) reported.add(byUsage.get('input_tokens'));
  const units = [...reported];
  const leaf = new Map(units.map((u) => [u, amount(u, model)]));
  if (inputTarget !== null) {  // input_tokens exactly inputTarget: shrink the specific input meters to fit
    const inTok = byUsage.get('input_tokens');
    const specific = units.filter((u) => u !== inTok && within(inTok, u));
    const sum = specific.reduce((s, u) => s + leaf.get(u), 0);
    if (sum > inputTarget) {
      const k = rand() * (inputTarget / sum);
      for (const u of specific) leaf.set(u, Math.floor(leaf.get(u) * k));
    }
    leaf.set(inTok, inputTarget - specific.reduce((s, u) => s + leaf.get(u), 0));
  }
  const usage = {};
  for (const u of units.sort((a, b) => (a.usage < b.usage ? -1 : 1))) {
    const total = units.filter((v) => within(u, v)).reduce((s, v) => s + leaf.get(v), 0);
    // a meter with nothing in it is sometimes left out rather than 0; not an
    // overlap of two others (calcPrice wants those reported when both are)
    const parents = units.filter((v) => v !== u && within(v, u));
    const overlap = parents.some((a) => parents.some((b) => !within(a, b) && !within(b, a)));
    if (total === 0 && !overlap && rand() < 0.4) continue;
    usage[u.usage] = emit(u, total);
  }
  return usage;
}
function tierStarts(prices) {
  const s = new Set();
  for (const v of Object.values(prices)) if (v && typeof v === 'object') for (const t of v.tiers) s.add(t.start);
  return [...s].sort((a, b) => a - b);
}

// ---- cases --------------------------------------------------------------------
let models = 0, printed = 0, wrongEntry = 0, entries = 0, tierPoints = 0;
const entriesHit = new Set(), tierSides = new Set();
const refused = new Map();  // reason -> count
const refuse = (why) => refused.set(why, (refused.get(why) ?? 0) + 1);
const out = [];
// The name to price a model by: its id, unless the id does not match the
// model's own match rule (e.g. AWS "regional.*" ids); then the first literal
// of the rule (equals / starts_with / contains / ends_with) that calcPrice
// resolves to this model.
function literals(m) {
  if (m.or) return m.or.flatMap(literals);
  if (m.and) return m.and.flatMap(literals);
  return ['equals', 'starts_with', 'contains', 'ends_with'].filter((k) => typeof m[k] === 'string').map((k) => m[k]);
}
let renamed = 0, unresolved = 0;
function nameFor(provider, model) {
  for (const name of [model.id, ...literals(model.match ?? {})]) {
    let r = null;
    try {
      r = calcPrice({}, name, { providerId: provider.id, timestamp: new Date('2025-06-01T00:00:00Z') });
    } catch {
      r = null;
    }
    if (r && r.model.id === model.id && r.provider.id === provider.id) {
      if (name !== model.id) renamed++;
      return name;
    }
  }
  unresolved++;
  return model.id;
}
function priceCase(provider, model, name, usage, t, kind) {
  const at = new Date(t).toISOString();
  let r;
  try {
    r = calcPrice(usage, name, { providerId: provider.id, timestamp: new Date(t) });
  } catch (e) {
    refuse(`throws: ${String(e.message).replace(/\d+(\.\d+)?/g, 'N').replace(/for \w+ and \w+/, 'for ...')}`);
    return;
  }
  if (!r) return refuse('returns null');
  if (typeof r.total_price !== 'number' || !Number.isFinite(r.total_price)) return refuse('non-finite total');
  const entry = activeEntry(model, new Date(t));
  if (JSON.stringify(r.model_price) !== JSON.stringify(entriesOf(model)[entry].prices)) wrongEntry++;
  entriesHit.add(`${provider.id}\x1f${model.id}\x1f${entry}`);
  if (tierStarts(entriesOf(model)[entry].prices).length) {
    const n = usage.input_tokens ?? 0;
    for (const s of tierStarts(entriesOf(model)[entry].prices)) tierSides.add(`${provider.id}\x1f${model.id}\x1f${entry}\x1f${s}\x1f${Math.sign(n - s)}`);
  }
  // model_id: the catalog model the name resolved to (for the report)
  const c = { provider: provider.id, model: name, usage, at, js_total: r.total_price, kind, model_id: r.model.id };
  out.push(JSON.stringify(c));
  printed++;
}

for (const provider of loadProviders()) {
  for (const model of provider.models) {
    models++;
    const name = nameFor(provider, model);
    const es = entriesOf(model);
    entries += es.length;
    for (const e of es) tierPoints += 3 * tierStarts(e.prices).length;
    const bounds = boundaryTimes(model);
    // constraint boundaries
    for (const t of bounds) priceCase(provider, model, name, makeUsage(model, es[activeEntry(model, new Date(t))].prices, null), t, 'time');
    // tier boundaries, at a time each entry is in force
    es.forEach((e, i) => {
      const starts = tierStarts(e.prices);
      if (!starts.length) return;
      let t = null;
      for (const c of [...bounds.slice().reverse(), randomTime(), randomTime(), Date.parse('2025-06-01T12:00:00Z')])
        if (activeEntry(model, new Date(c)) === i) { t = c; break; }
      if (t === null) return;
      for (const s of starts) for (const d of [-1, 0, 1]) if (s + d >= 0) priceCase(provider, model, name, makeUsage(model, e.prices, s + d), t, 'tier');
    });
    // random usages at random (or boundary) times, input_tokens sometimes near a tier start
    for (let i = 0; i < perModel; i++) {
      const t = bounds.length && rand() < 0.5 ? pick(bounds) : randomTime();
      const prices = es[activeEntry(model, new Date(t))].prices;
      const starts = tierStarts(prices);
      const target = starts.length && rand() < 0.5 ? Math.max(0, pick(starts) + pick([-1000, -1, 0, 1, 1000, int(50000) - 25000])) : null;
      priceCase(provider, model, name, makeUsage(model, prices, target), t, 'random');
    }
  }
}
process.stdout.write(out.join('\n') + '\n');
const skipped = [...refused.values()].reduce((a, b) => a + b, 0);
process.stderr.write(`generated: ${printed} cases over ${models} models; skipped ${skipped} (calcPrice threw or returned null)\n`);
for (const [why, n] of [...refused].sort((a, b) => b[1] - a[1])) process.stderr.write(`  skipped ${n}: ${why}\n`);
process.stderr.write(`  price entries priced: ${entriesHit.size} of ${entries}; tier starts hit from below, at and above: ${tierSides.size} of ${tierPoints}\n`);
process.stderr.write(`  models priced by a name other than their id (the id does not match the model's own rule): ${renamed}; by no name resolving to them: ${unresolved}\n`);
if (wrongEntry) process.stderr.write(`  warning: ${wrongEntry} cases priced by calcPrice with another price entry than the generator chose\n`);
