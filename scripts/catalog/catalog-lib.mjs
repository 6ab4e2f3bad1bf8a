// catalog-lib.mjs: reads the bundled genai-prices catalog through the
// package's public API: `genai-prices list` names the providers (in catalog
// order) and findProvider returns each one whole.
//
// One pricing rule lives in the package's code rather than its data (Groq's
// 10-second minimum for Whisper transcription); it is carried over as
// pg_meter's "minimums" field so that prices agree.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { findProvider } from '@pydantic/genai-prices';

export function loadProviders() {
  const require = createRequire(import.meta.url);
  const pkgDir = path.dirname(path.dirname(require.resolve('@pydantic/genai-prices')));
  // the CLI exits before a pipe drains, so let it write to a file
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-meter-'));
  const listFile = path.join(tmp, 'list.txt');
  const fd = fs.openSync(listFile, 'w');
  execFileSync(process.execPath, [path.join(pkgDir, 'dist', 'cli.js'), 'list'], { stdio: ['ignore', fd, 'inherit'] });
  fs.closeSync(fd);
  const listing = fs.readFileSync(listFile, 'utf8');
  fs.rmSync(tmp, { recursive: true, force: true });
  const ids = [];
  for (const line of listing.split('\n')) {
    const m = /^\s+([^:\s]+):/.exec(line);
    if (m && !ids.includes(m[1])) ids.push(m[1]);
  }
  const providers = [];
  for (const id of ids) {
    const p = findProvider({ providerId: id });
    if (!p || p.id !== id) throw new Error(`genai-prices has no provider ${id}`);
    const copy = JSON.parse(JSON.stringify(p));
    if (copy.id === 'groq') {
      for (const m of copy.models) {
        if (m.id === 'whisper-large-v3' || m.id === 'whisper-large-v3-turbo') {
          m.minimums = { audio_seconds: 10, input_audio_seconds: 10 };
        }
      }
    }
    providers.push(copy);
  }
  return providers;
}
