// genai-catalog.mjs: prints the bundled genai-prices catalog as the JSON
// array of providers that meter.load_prices(catalog jsonb) takes.
import { loadProviders } from './catalog-lib.mjs';

process.stdout.write(JSON.stringify(loadProviders()));
