// cases.mjs: random usages for every model of the bundled genai-prices
// catalog, priced by the package's own calcPrice. Prints one JSON line per
// case: {provider, model, usage, at, js} (js null when calcPrice refused).
// Usage: node cases.mjs METERS_JSON [cases_per_model]
// METERS_JSON is meter.meters as a JSON array (meter, price_key, dimensions, whole_units).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { loadProviders } from '../../scripts/catalog/catalog-lib.mjs';
import { prng } from './prng.mjs';

const require = createRequire(new URL('../../scripts/catalog/package.json', import.meta.url));
const { calcPrice } = require('@pydantic/genai-prices');

const meters = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const perModel = Number(process.argv[3] ?? 6);
const byPriceKey = new Map(meters.map((m) => [m.price_key, m]));
const subset = (a, b) => Object.entries(a.dimensions).every(([k, v]) => b.dimensions[k] === v);

const rand = prng(20261124);
const int = (n) => Math.floor(rand() * n);

// entries of a model's price list, and the times worth pricing at
function entries(model) {
  return Array.isArray(model.prices) ? model.prices : [{ prices: model.prices }];
}
function times(model) {
  const out = ['2025-06-01T12:00:00.000Z'];
  for (const e of entries(model)) {
    const c = e.constraint;
    if (!c) continue;
    if (c.start_date) {
      out.push(`${c.start_date}T00:00:00.000Z`);
      const d = new Date(`${c.start_date}T00:00:00Z`);
      out.push(new Date(d.getTime() - 1000).toISOString());
      out.push(new Date(d.getTime() + 86400000 * 40).toISOString());
    }
    if (c.start_time) {
      for (const h of [0, 3, 9, 15, 17, 21]) out.push(`2026-02-0${1 + (h % 5)}T${String(h).padStart(2, '0')}:10:00.000Z`);
    }
  }
  return out;
}

// usage for a price set: the general meters first, specific ones within them
function usageFor(prices) {
  const units = [];
  let tierStarts = [];
  for (const [key, value] of Object.entries(prices)) {
    const m = byPriceKey.get(key);
    if (!m || m.meter === 'requests') continue;
    units.push(m);
    if (value && typeof value === 'object') tierStarts = tierStarts.concat(value.tiers.map((t) => t.start));
  }
  units.sort((a, b) => Object.keys(a.dimensions).length - Object.keys(b.dimensions).length);
  const usage = {};
  for (const u of units) {
    const parents = units.filter((p) => p !== u && subset(p, u));
    let v;
    if (parents.length === 0) {
      if (u.meter === 'input_tokens' && tierStarts.length && rand() < 0.6) {
        const s = tierStarts[int(tierStarts.length)];
        v = Math.max(0, s + [-1, 0, 1, 1000, -1000][int(5)]);
      } else v = rand() < 0.1 ? 0 : int(rand() < 0.5 ? 5000 : 400000);
    } else {
      const cap = Math.min(...parents.map((p) => usage[p.meter] ?? 0));
      v = Math.floor((cap / 3) * rand());
    }
    if (!u.whole_units) v = v / 100 + (rand() < 0.5 ? 0.25 : 0);  // durations: fractional seconds
    usage[u.meter] = v;
  }
  return usage;
}

let models = 0, cases = 0, refused = 0;
for (const provider of loadProviders()) {
  for (const model of provider.models) {
    models++;
    const ts = times(model);
    for (let i = 0; i < perModel; i++) {
      const entry = entries(model)[i % entries(model).length];
      const usage = usageFor(entry.prices);
      const at = ts[i % ts.length];
      let js = null;
      try {
        const r = calcPrice(usage, model.id, { providerId: provider.id, timestamp: new Date(at) });
        js = r ? r.total_price : null;
        if (r && (r.model.id !== model.id || r.provider.id !== provider.id)) {
          // the name resolved to another model: pg_meter must resolve it the same way
        }
      } catch {
        js = null;
      }
      if (js === null) refused++;
      cases++;
      process.stdout.write(JSON.stringify({ provider: provider.id, model: model.id, usage, at, js }) + '\n');
    }
  }
}
process.stderr.write(`cases: ${cases} over ${models} models; calcPrice refused ${refused}\n`);
