// extract.mjs: for every usage extractor of the bundled genai-prices catalog
// (provider x API flavor), a synthetic response carrying every member the
// extractor reads, with what genai-prices' own extractUsage makes of it.
// Prints one JSON line per case: {provider, flavor, response, usage}.
import { createRequire } from 'node:module';
import { loadProviders } from '../../scripts/catalog/catalog-lib.mjs';
import { prng } from './prng.mjs';

const require = createRequire(new URL('../../scripts/catalog/package.json', import.meta.url));
const { extractUsage } = require('@pydantic/genai-prices');

const rand = prng(424242);

// set writes value at a path of steps (names, or array matches) in obj
function set(obj, steps, value) {
  let cur = obj;
  steps.forEach((step, i) => {
    const last = i === steps.length - 1;
    if (typeof step === 'object') {  // array-match: an element whose field matches
      const lit = step.match.equals ?? step.match.starts_with ?? step.match.contains ?? 'X';
      let item = cur.find((e) => e[step.field] === lit);
      if (!item) {
        item = { [step.field]: lit };
        cur.push(item);
      }
      cur = item;
      return;
    }
    if (last) {
      cur[step] = value;
      return;
    }
    const next = steps[i + 1];
    if (cur[step] === undefined) cur[step] = typeof next === 'object' ? [] : {};
    cur = cur[step];
  });
}

let n = 0;
for (const provider of loadProviders()) {
  for (const ex of provider.extractors ?? []) {
    for (let variant = 0; variant < 3; variant++) {
      const root = Array.isArray(ex.root) ? ex.root : [ex.root];
      const response = { model: 'm' };
      const usage = {};
      for (const m of ex.mappings) {
        const path = Array.isArray(m.path) ? m.path : [m.path];
        // optional members are present in some variants only
        if (!m.required && variant > 0 && rand() < 0.4) continue;
        set(usage, path, 1 + Math.floor(rand() * 5000));
      }
      set(response, root, usage);
      let expected;
      try {
        expected = extractUsage(provider, response, ex.api_flavor).usage;
      } catch {
        continue;
      }
      n++;
      // variant 2 passes the usage object itself, the others the whole response
      const given = variant === 2 ? usage : response;
      process.stdout.write(JSON.stringify({ provider: provider.id, flavor: ex.api_flavor, response: given, usage: expected }) + '\n');
    }
  }
}
process.stderr.write(`extraction cases: ${n}\n`);
