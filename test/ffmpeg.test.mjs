import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { libIndex, tmpDir } from './helpers/paths.mjs';

const require = createRequire(import.meta.url);
const { findFfmpeg, probeFfmpeg } = require(libIndex);

// Stand-in ffmpeg executables: the finder only needs `-version` to answer like ffmpeg does.
function fakeFfmpeg(dir, name, version) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\necho "ffmpeg version ${version} Copyright (c) test"\n`, { mode: 0o755 });
  return file;
}

const posix = process.platform !== 'win32';
const none = () => null;

test('FFMPEG_PATH comes first', async (t) => {
  if (!posix) return t.pass('POSIX shell stand-ins');
  const dir = tmpDir();
  const env = { PATH: '', FFMPEG_PATH: fakeFfmpeg(dir, 'ff-env', '9.1-env') };
  const info = await findFfmpeg({ env, resolveFfmpegStatic: () => fakeFfmpeg(dir, 'ff-static', '9.2'), resolveFfmpegInstaller: none });
  t.deepEqual(info, { path: env.FFMPEG_PATH, source: 'FFMPEG_PATH', version: '9.1-env' });
});

test('a broken FFMPEG_PATH is an error naming it, not a silent fallback', async (t) => {
  const env = { PATH: '', FFMPEG_PATH: '/nonexistent/ffmpeg' };
  const err = await t.throwsAsync(findFfmpeg({ env, resolveFfmpegStatic: none, resolveFfmpegInstaller: none }));
  t.is(err.code, 'ERR_FFMPEG_NOT_FOUND');
  t.regex(err.message, /FFMPEG_PATH is set to \/nonexistent\/ffmpeg/);
});

test('then ffmpeg-static, then @ffmpeg-installer/ffmpeg, then PATH', async (t) => {
  if (!posix) return t.pass('POSIX shell stand-ins');
  const dir = tmpDir();
  const st = fakeFfmpeg(dir, 'ff-static', '9.2');
  const inst = fakeFfmpeg(dir, 'ff-inst', '9.3');
  const binDir = path.join(dir, 'bin');
  fs.mkdirSync(binDir);
  fakeFfmpeg(binDir, 'ffmpeg', '9.4-path');
  const env = { PATH: binDir };

  t.is((await findFfmpeg({ env, resolveFfmpegStatic: () => st, resolveFfmpegInstaller: () => inst })).source, 'ffmpeg-static');
  // ffmpeg-static's download failed (offline install): its path points nowhere.
  const i2 = await findFfmpeg({ env, resolveFfmpegStatic: () => path.join(dir, 'missing'), resolveFfmpegInstaller: () => inst });
  t.is(i2.source, '@ffmpeg-installer/ffmpeg');
  t.is(i2.version, '9.3');
  const i3 = await findFfmpeg({ env, resolveFfmpegStatic: none, resolveFfmpegInstaller: none });
  t.is(i3.source, 'PATH');
  t.is(i3.version, '9.4-path');
});

test('nothing that runs: one error listing what was tried', async (t) => {
  const dir = tmpDir();
  const notFfmpeg = path.join(dir, 'not-ffmpeg');
  fs.writeFileSync(notFfmpeg, '#!/bin/sh\necho hello\n', { mode: 0o755 });
  const err = await t.throwsAsync(findFfmpeg({ env: { PATH: dir + '/empty' }, resolveFfmpegStatic: none, resolveFfmpegInstaller: () => notFfmpeg }));
  t.is(err.code, 'ERR_FFMPEG_NOT_FOUND');
  t.regex(err.message, /ffmpeg-static: not installed/);
  t.regex(err.message, /@ffmpeg-installer\/ffmpeg: .*did not print "ffmpeg version/);
  t.regex(err.message, /PATH: not found/);
  t.regex(err.message, /FFMPEG_PATH/);
});

test('the default search finds a real ffmpeg in this installation', async (t) => {
  const info = await findFfmpeg({ fresh: true });
  t.truthy(info.path);
  t.is(await probeFfmpeg(info.path), info.version);
});
