// A loopback stand-in for the Hugging Face hub, for the `pull` tests: it serves files under the real
// repository paths (GET {repo}/resolve/{revision}/{path}, redirected to a "CDN" path as the hub does
// for LFS files, with HTTP Range) and answers POST /api/models/{repo}/paths-info/{revision} with the
// sizes and hashes. Per file it can ask for a token (401), refuse (403), be missing (404), cut the
// connection part way, stall, ignore ranges (200), or serve other bytes than it lists (wrong sha256).
// It listens on 127.0.0.1 only and logs every request.
import crypto from 'node:crypto';
import http from 'node:http';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const gitSha1 = (b) => crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/**
 * files: [{ repo, revision, path, data: Buffer, lfs?: boolean (default: not .json),
 *           token?: string, forbidden?: bool, missing?: 'all' | 'get', corrupt?: bool, noRanges?: bool,
 *           cutAt?: byte offset, cuts?: how many requests to cut there (default 1),
 *           stallAt?: byte offset, stalls?: count, delayMs?: per 16 KiB chunk }]
 */
export async function startHub(files) {
  const log = [];
  const byKey = new Map(files.map((f) => [`${f.repo}@${f.revision}/${f.path}`, { lfs: !f.path.endsWith('.json'), cuts: 1, stalls: 1, ...f }]));
  const cdn = new Map();
  const sockets = new Set();
  const authorized = (f, req) => !f.token || req.headers.authorization === `Bearer ${f.token}`;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const entry = { method: req.method, path: decodeURIComponent(url.pathname), range: req.headers.range, auth: req.headers.authorization, status: 0, sent: 0 };
    log.push(entry);
    const send = (status, body = '', headers = {}) => { entry.status = status; res.writeHead(status, headers); res.end(body); };

    let m = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/(.+)$/.exec(url.pathname);
    if (req.method === 'POST' && m) {
      const [repo, revision] = [m[1], decodeURIComponent(m[2])];
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const { paths } = JSON.parse(body);
        const mine = [...byKey.values()].filter((f) => f.repo === repo && f.revision === revision);
        if (mine.length === 0) return send(404, '{"error":"Repository not found"}');
        if (mine.some((f) => !authorized(f, req))) return send(401, '{"error":"Invalid credentials"}');
        if (mine.some((f) => f.forbidden)) return send(403, '{"error":"gated"}');
        const out = mine.filter((f) => paths.includes(f.path) && f.missing !== 'all').map((f) => ({
          type: 'file', path: f.path, size: f.data.length, oid: gitSha1(f.data),
          ...(f.lfs ? { lfs: { oid: sha256(f.data), size: f.data.length, pointerSize: 134 } } : {}),
        }));
        send(200, JSON.stringify(out), { 'content-type': 'application/json' });
      });
      return;
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (req.method === 'GET' && m) {
      const f = byKey.get(`${m[1]}@${decodeURIComponent(m[2])}/${decodeURIComponent(m[3])}`);
      if (!f || f.missing) return send(404, 'Entry not found');
      if (!authorized(f, req)) return send(401, 'Invalid credentials');
      if (f.forbidden) return send(403, 'gated');
      const id = crypto.randomBytes(6).toString('hex');
      cdn.set(id, f);
      return send(302, '', { location: `/cdn/${id}` });
    }
    m = /^\/cdn\/([0-9a-f]+)$/.exec(url.pathname);
    if (req.method === 'GET' && m && cdn.has(m[1])) {
      const f = cdn.get(m[1]);
      entry.file = f.path;
      const data = f.corrupt ? Buffer.from(f.data).fill(0x5a, 0, 8) : f.data;
      let start = 0;
      let end = data.length - 1;
      const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      let status = 200;
      const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': f.noRanges ? 'none' : 'bytes' };
      if (r && !f.noRanges) {
        start = Number(r[1]);
        end = r[2] ? Math.min(Number(r[2]), data.length - 1) : data.length - 1;
        if (start > end) return send(416, '', { 'content-range': `bytes */${data.length}` });
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
      }
      headers['content-length'] = String(end - start + 1);
      entry.status = status;
      entry.start = start;
      res.writeHead(status, headers);
      const cutHere = f.cutAt !== undefined && f.cuts > 0 && start <= f.cutAt && f.cutAt <= end;
      const stallHere = f.stallAt !== undefined && f.stalls > 0 && start <= f.stallAt && f.stallAt <= end;
      if (cutHere) f.cuts--;
      if (stallHere) f.stalls--;
      const stopAt = cutHere ? f.cutAt : stallHere ? f.stallAt : end + 1;
      let pos = start;
      const pump = () => {
        while (pos < stopAt) {
          const n = Math.min(16384, stopAt - pos);
          const ok = res.write(data.subarray(pos, pos + n));
          pos += n;
          entry.sent += n;
          entry.end = pos;
          if (f.delayMs) return setTimeout(pump, f.delayMs);
          if (!ok) return res.once('drain', pump);
        }
        if (cutHere) res.socket.destroy();      // the connection is cut mid-file
        else if (!stallHere) res.end();         // a stalled one just stops sending
      };
      pump();
      return;
    }
    send(404, 'no route');
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${server.address().port}`;
  return {
    endpoint,
    log,
    files: byKey,
    /** Sets options of one file (by path) for the next requests. */
    set(p, opts) { for (const f of byKey.values()) if (f.path === p) Object.assign(f, opts); },
    /** Byte ranges [start, end) the CDN sent of one file. */
    served(p) { return log.filter((e) => e.file === p && e.sent > 0).map((e) => [e.start, e.start + e.sent]); },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

export { sha256, gitSha1 };
