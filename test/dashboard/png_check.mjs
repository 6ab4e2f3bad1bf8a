// png_check.mjs: is a screenshot a real page? Decodes a PNG with node's
// zlib only (8-bit RGB or RGBA, not interlaced: what Chromium writes) and
// checks what the arguments ask, one TAP-like line per check:
//   node png_check.mjs FILE [--size 1280x2400] [--min-colours N]
//        [--colour '#4e79a7:200' ...] [--absent '#4e79a7' ...] [--share '#f3f4f6:0.05' ...]
// --colour: at least that many pixels of exactly that colour; --absent: none;
// --share: at least that fraction of all pixels. Prints "ok - ..." or
// "not ok - ..." per check; exits 1 when any is not ok.
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';

function decode(buf) {
  const sig = '89504e470d0a1a0a';
  if (buf.subarray(0, 8).toString('hex') !== sig) throw new Error('not a PNG file');
  let off = 8, width = 0, height = 0, depth = 0, type = 0, interlace = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const kind = buf.subarray(off + 4, off + 8).toString('latin1');
    const data = buf.subarray(off + 8, off + 8 + len);
    if (kind === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      depth = data[8]; type = data[9]; interlace = data[12];
    } else if (kind === 'IDAT') idat.push(data);
    else if (kind === 'IEND') break;
    off += 12 + len;
  }
  if (depth !== 8 || (type !== 2 && type !== 6) || interlace !== 0)
    throw new Error(`unsupported PNG: depth ${depth}, colour type ${type}, interlace ${interlace}`);
  const bpp = type === 6 ? 4 : 3, stride = width * bpp;
  const raw = inflateSync(Buffer.concat(idat));
  const px = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? px[dst + x - bpp] : 0, b = y > 0 ? px[dst + x - stride] : 0;
      const c = x >= bpp && y > 0 ? px[dst + x - stride - bpp] : 0;
      let p = raw[src + x];
      if (f === 1) p += a;
      else if (f === 2) p += b;
      else if (f === 3) p += (a + b) >> 1;
      else if (f === 4) {
        const q = a + b - c, pa = Math.abs(q - a), pb = Math.abs(q - b), pc = Math.abs(q - c);
        p += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (f !== 0) throw new Error(`bad filter ${f} in row ${y}`);
      px[dst + x] = p & 255;
    }
  }
  const counts = new Map();
  for (let i = 0; i < px.length; i += bpp) {
    const k = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  return { width, height, counts };
}

const hex = (s) => parseInt(s.replace('#', ''), 16);
const args = process.argv.slice(2);
const file = args.shift();
let failed = 0;
const check = (ok, what) => { console.log(`${ok ? 'ok' : 'not ok'} - ${what}`); if (!ok) failed++; };
let img;
try {
  img = decode(readFileSync(file));
  check(true, `${file} decodes: ${img.width}x${img.height}, ${img.counts.size} colours`);
} catch (e) {
  check(false, `${file} decodes (${e.message})`);
  process.exit(1);
}
const total = img.width * img.height;
for (let i = 0; i < args.length; i += 2) {
  const [opt, val] = [args[i], args[i + 1]];
  if (opt === '--size') check(`${img.width}x${img.height}` === val, `size ${img.width}x${img.height} is ${val}`);
  else if (opt === '--min-colours') check(img.counts.size >= +val, `${img.counts.size} distinct colours, at least ${val}`);
  else if (opt === '--colour') {
    const [c, n] = val.split(':'), got = img.counts.get(hex(c)) || 0;
    check(got >= +n, `${got} pixels of ${c}, at least ${n}`);
  } else if (opt === '--absent') {
    const got = img.counts.get(hex(val)) || 0;
    check(got === 0, `${got} pixels of ${val}, none expected`);
  } else if (opt === '--share') {
    const [c, f] = val.split(':'), got = (img.counts.get(hex(c)) || 0) / total;
    check(got >= +f, `${(got * 100).toFixed(1)} % of the pixels are ${c}, at least ${(+f * 100).toFixed(1)} %`);
  } else check(false, `unknown option ${opt}`);
}
process.exit(failed ? 1 : 0);
