// Audio/video decoding with ffmpeg and ImageBind's clip/frame selection, checked against the fixtures
// (README §4.2, §4.3 step 1): assets.json's ffprobe values, manifest clip timing, decoded-frame PNGs.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { libIndex, fixtures, tmpDir } from './helpers/paths.mjs';

const require = createRequire(import.meta.url);
const { decodeAudio, probeVideo, decodeVideoClips, uniformIndices, findFfmpeg } = require(libIndex);
const run = promisify(execFile);

const assetsDir = path.join(fixtures, 'assets');
const asset = (name) => path.join(assetsDir, name);
const assets = JSON.parse(fs.readFileSync(asset('assets.json'), 'utf8'));
const caseDir = path.join(fixtures, 'tiny-a');
const manifest = JSON.parse(fs.readFileSync(path.join(caseDir, 'manifest.json'), 'utf8'));
const videoCase = (name) => manifest.imagebind_cases.find((c) => c.name === `video_${name}`);

const frac = (s) => s.split('/').map(Number);
const scratch = tmpDir('ibl-media-');
test.after.always(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A PNG's pixels as raw RGB24, decoded by ffmpeg (PNG is lossless: these are the fixture's bytes). */
async function pngRgb(file) {
  const { path: bin } = await findFfmpeg();
  const { stdout } = await run(bin, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', file,
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { encoding: 'buffer', maxBuffer: 1 << 26 });
  return new Uint8Array(stdout);
}

/** A generated test file (lavfi source, native encoders only). */
async function makeMedia(name, args) {
  const { path: bin } = await findFfmpeg();
  const file = path.join(scratch, name);
  if (!fs.existsSync(file)) await run(bin, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', ...args, file]);
  return file;
}

/** ffmpeg processes whose parent is this test process (Linux; zombies included). */
function ffmpegChildren() {
  if (process.platform !== 'linux') return [];
  const out = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (m && Number(m[3]) === process.pid && m[1].includes('ffmpeg')) out.push(`${pid} ${m[2]}`);
    } catch { /* exited meanwhile */ }
  }
  return out;
}

const mediaTempDirs = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('imagebind-llm-media-'));

/** A WAV file's samples, parsed by hand: PCM-16 → value / 32768, per channel. */
function readPcm16Wav(file) {
  const b = fs.readFileSync(file);
  let pos = 12, channels = 0, rate = 0, bits = 0;
  for (;;) {
    const id = b.toString('latin1', pos, pos + 4);
    const size = b.readUInt32LE(pos + 4);
    pos += 8;
    if (id === 'fmt ') {
      channels = b.readUInt16LE(pos + 2);
      rate = b.readUInt32LE(pos + 4);
      bits = b.readUInt16LE(pos + 14);
    }
    if (id === 'data') {
      if (bits !== 16) throw new Error(`${file}: ${bits}-bit`);
      const frames = size / (2 * channels);
      const ch = Array.from({ length: channels }, () => new Float32Array(frames));
      for (let i = 0; i < frames; i++) {
        for (let c = 0; c < channels; c++) ch[c][i] = b.readInt16LE(pos + 2 * (i * channels + c)) / 32768;
      }
      return { rate, channels: ch };
    }
    pos += size + (size & 1);
  }
}

// --- video: fixtures ----------------------------------------------------------------------------

for (const name of ['photos_5s', 'short_1p2s']) {
  test(`probeVideo ${name}: time base, start, duration and size equal ffprobe's (assets.json)`, async (t) => {
    const ref = assets.video[name].ffprobe.find((s) => s.codec_type === 'video');
    const meta = await probeVideo(asset(`${name}.mp4`));
    t.deepEqual(meta.timeBase, frac(ref.time_base));
    t.is(meta.startPts, ref.start_pts);
    t.is(meta.durationTs, ref.duration_ts);
    t.is(meta.width, ref.width);
    t.is(meta.height, ref.height);
    t.is(meta.codec, ref.codec_name);
    t.is(meta.frameCount, Number(ref.nb_frames));
    t.deepEqual(meta.duration, frac(videoCase(name).preprocess.duration_sec));
    t.deepEqual(meta.warnings, []);
  });

  test(`decodeVideoClips ${name}: clips, selected pts and RGB equal the manifest and decoded-frame PNGs`, async (t) => {
    const c = videoCase(name);
    const pre = c.preprocess;
    const progress = [];
    const t0 = performance.now();
    const { meta, clips } = await decodeVideoClips(asset(`${name}.mp4`), { onProgress: (f) => progress.push(f) });
    t.log(`decode ${name}.mp4: ${(performance.now() - t0).toFixed(0)} ms`);
    t.deepEqual(meta.duration, frac(pre.duration_sec));
    t.deepEqual(meta.timeBase, frac(pre.time_base));
    t.is(meta.startPts, pre.start_pts);
    t.deepEqual([meta.height, meta.width], pre.frame_size_hw);
    t.is(clips.length, pre.clips.length);
    pre.clips.forEach((ref, k) => {
      const got = clips[k];
      t.deepEqual(got.start, frac(ref.start_sec), `clip ${k} start`);
      t.deepEqual(got.end, frac(ref.end_sec), `clip ${k} end`);
      t.is(got.startPts, ref.start_pts, `clip ${k} start pts`);
      t.is(got.endPts, ref.end_pts, `clip ${k} end pts`);
      t.is(got.frameCount, ref.num_frames_in_clip, `clip ${k} T`);
      t.deepEqual(got.frames.map((f) => f.pts), ref.selected_pts, `clip ${k} selected pts`);
      t.deepEqual(got.frames.map((f) => f.index), ref.subsample_indices, `clip ${k} subsample indices`);
      t.is(got.frames[0].pts, ref.first_pts);
      t.is(got.frames.at(-1).pts, ref.last_pts);
    });

    // Pixels: the selected frames against the PNGs of PyAV/FFmpeg-5.1's decode.
    const byPts = new Map(clips.flatMap((cl) => cl.frames).map((f) => [f.pts, f.rgb]));
    t.deepEqual([...byPts.keys()].sort((a, b) => a - b), Object.keys(c.decoded_frames_rgb_uint8).map(Number).sort((a, b) => a - b));
    let maxDiff = 0, sumDiff = 0, n = 0, differing = 0;
    for (const [pts, png] of Object.entries(c.decoded_frames_rgb_uint8)) {
      const ref = await pngRgb(path.join(caseDir, png));
      const got = byPts.get(Number(pts));
      t.is(got.length, meta.width * meta.height * 3);
      t.is(ref.length, got.length);
      for (let i = 0; i < ref.length; i++) {
        const d = Math.abs(ref[i] - got[i]);
        if (d > maxDiff) maxDiff = d;
        if (d) differing++;
        sumDiff += d;
        n++;
      }
    }
    t.log(`${name}: ${byPts.size} frames vs PNG: max |Δ| ${maxDiff}, mean |Δ| ${(sumDiff / n).toExponential(2)}, ${differing} of ${n} values differ`);
    // H.264 decoding is bit-exact by specification and yuv420p→rgb24 at the same size takes
    // libswscale's unscaled yuv2rgb path (BT.601, limited range) in FFmpeg 4.x and 5.1 alike: 0 here.
    // ≤ 2 leaves room for another CPU's SIMD rounding; a wrong matrix or range gives tens.
    t.true(maxDiff <= 2, `max |Δ| ${maxDiff}`);

    t.true(progress.length > 0);
    t.is(progress.at(-1), 1);
    t.true(progress.every((f, i) => f >= 0 && f <= 1 && (i === 0 || f >= progress[i - 1])));
  });
}

test('decodeVideoClips: other clip counts and lengths use the same exact arithmetic', async (t) => {
  // duration 5, clip 1 s, 3 clips: max_start 4, step 2 → [0,1) [2,3) [4,5); 25 frames each, 1 kept (index 0).
  const { clips } = await decodeVideoClips(asset('photos_5s.mp4'), { clipDuration: 1, clipsPerVideo: 3 });
  t.deepEqual(clips.map((c) => [c.start, c.end, c.startPts, c.endPts, c.frameCount]), [
    [[0, 1], [1, 1], 0, 12800, 25],
    [[2, 1], [3, 1], 25600, 38400, 25],
    [[4, 1], [5, 1], 51200, 64000, 25],
  ]);
  t.deepEqual(clips.map((c) => c.frames.map((f) => [f.pts, f.index])), [[[0, 0]], [[25600, 0]], [[51200, 0]]]);

  // clip 3/2 s as a fraction, 4 frames: step (5 − 3/2) / 4 = 7/8; clip 1 = [7/8, 19/8) → pts [11200, 30400).
  const r = await decodeVideoClips(asset('photos_5s.mp4'), { clipDuration: [3, 2], clipsPerVideo: 5, framesPerClip: 4 });
  t.deepEqual(r.clips[1].start, [7, 8]);
  t.deepEqual(r.clips[1].end, [19, 8]);
  t.is(r.clips[1].startPts, 11200); // ceil(7/8 · 12800)
  t.is(r.clips[1].endPts, 30400);
  t.is(r.clips[1].frameCount, 38); // pts 11264 … 30208
  t.deepEqual(r.clips[1].frames.map((f) => f.index), [0, 12, 24, 37]); // linspace(0, 37, 4) = 0, 12.33, 24.67, 37
  t.deepEqual(r.clips[1].frames.map((f) => f.pts), [11264, 17408, 23552, 30208]);
});

test('decodeVideoClips onClip: each clip as soon as its frames are decoded, in order, the final clips', async (t) => {
  const seen = [];
  let settled = false;
  const r = await decodeVideoClips(asset('photos_5s.mp4'), {
    onClip: (clip, index, size) => seen.push({ clip, index, size, early: !settled }),
  }).finally(() => { settled = true; });
  t.true(seen.every((s) => s.early), 'every clip came before the decode settled');
  t.true(r.streamedClipsFinal);
  t.deepEqual(seen.map((s) => s.index), [0, 1, 2, 3, 4]);
  t.deepEqual(seen.map((s) => s.size), Array(5).fill({ width: r.meta.width, height: r.meta.height }));
  seen.forEach(({ clip }, k) => {
    t.deepEqual(clip.frames.map((f) => f.pts), r.clips[k].frames.map((f) => f.pts));
    t.true(clip.frames.every((f, i) => f.rgb === r.clips[k].frames[i].rgb), `clip ${k}: the same frame buffers`);
  });
  t.is((await decodeVideoClips(asset('photos_5s.mp4'))).streamedClipsFinal, undefined);
});

test('a truncated MP4 keeps its header duration (as PyAV does): clips past the data hold no frames', async (t) => {
  const file = path.join(scratch, 'truncated.mp4');
  fs.writeFileSync(file, fs.readFileSync(asset('photos_5s.mp4')).subarray(0, 100000));
  const meta = await probeVideo(file);
  t.is(meta.durationTs, 64000);
  t.true(meta.frameCount < 125);
  t.true(meta.warnings.some((w) => /partial file/.test(w)), JSON.stringify(meta.warnings));
  const err = await t.throwsAsync(decodeVideoClips(file));
  t.is(err.code, 'ERR_VIDEO_EMPTY_CLIP');
  t.regex(err.message, /truncated\.mp4: clip 3 \[9\/4, 17\/4\) s holds no frames/);
});

test('option checks', async (t) => {
  const v = asset('short_1p2s.mp4');
  t.is((await t.throwsAsync(decodeVideoClips(v, { clipDuration: [1.5, 2] }))).name, 'TypeError');
  t.is((await t.throwsAsync(decodeVideoClips(v, { clipsPerVideo: 0 }))).name, 'RangeError');
  t.regex((await t.throwsAsync(decodeVideoClips(v, { clipDuration: 0.5 }))).message, /framesPerClip must be an integer from 1 to 64/);
  const r = await decodeVideoClips(v, { clipDuration: 0.5, framesPerClip: 1, clipsPerVideo: 1 });
  t.deepEqual([r.clips[0].start, r.clips[0].end, r.clips[0].frameCount], [[0, 1], [1, 2], 13]); // pts 0 … 6144 < 6400
});

test('uniformIndices is torch.linspace(0, T − 1, n).long()', (t) => {
  t.deepEqual(uniformIndices(50, 2), [0, 49]);
  t.deepEqual(uniformIndices(1, 2), [0, 0]);
  t.deepEqual(uniformIndices(50, 3), [0, 24, 49]);
  t.deepEqual(uniformIndices(10, 4), [0, 3, 6, 9]);
  t.deepEqual(uniformIndices(8, 4), [0, 2, 4, 7]);
  t.deepEqual(uniformIndices(3, 5), [0, 0, 1, 1, 2]);
});

test('Matroska: no stream duration in FFmpeg, so the last frame pts gives it (pytorchvideo fallback)', async (t) => {
  const file = await makeMedia('mpeg4_3s.mkv',
    ['-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=25:duration=3', '-c:v', 'mpeg4', '-f', 'matroska']);
  const meta = await probeVideo(file);
  t.deepEqual(meta.timeBase, [1, 1000]);
  t.is(meta.startPts, 0);
  t.is(meta.durationTs, null);
  t.is(meta.frameCount, 75);
  t.deepEqual(meta.duration, [74, 25]); // last pts 2960 ms
  const { clips } = await decodeVideoClips(file);
  // max_start = 74/25 − 2 = 24/25; step = 6/25; clip 1 = [6/25, 56/25) → pts [240, 2240): 50 frames.
  t.deepEqual(clips[1].start, [6, 25]);
  t.deepEqual([clips[1].startPts, clips[1].endPts, clips[1].frameCount], [240, 2240, 50]);
  t.deepEqual(clips[1].frames.map((f) => f.pts), [240, 2200]);
  t.deepEqual([clips[4].startPts, clips[4].endPts, clips[4].frameCount], [960, 2960, 50]);
  t.is(clips[0].frames[0].rgb.length, 160 * 120 * 3);
});

// --- audio -------------------------------------------------------------------------------------

for (const name of ['dog_audio', 'car_audio']) {
  test(`decodeAudio ${name}.wav: every channel at the original rate, exactly PCM / 32768`, async (t) => {
    const ref = assets.audio[name];
    const got = await decodeAudio(asset(`${name}.wav`));
    t.is(got.sampleRate, ref.orig_sample_rate);
    t.is(got.channels.length, ref.orig_channels);
    const hand = readPcm16Wav(asset(`${name}.wav`));
    t.is(hand.rate, ref.orig_sample_rate);
    for (let c = 0; c < ref.orig_channels; c++) {
      t.true(got.channels[c] instanceof Float32Array);
      t.is(got.channels[c].length, ref.orig_frames);
      let mismatches = 0;
      for (let i = 0; i < ref.orig_frames; i++) if (got.channels[c][i] !== hand.channels[c][i]) mismatches++;
      t.is(mismatches, 0, `channel ${c}`);
    }
  });
}

test('decodeAudio: the mono AAC track of photos_5s.mp4 decodes', async (t) => {
  const got = await decodeAudio(asset('photos_5s.mp4'));
  t.is(got.sampleRate, 16000);
  t.is(got.channels.length, 1);
  t.log(`photos_5s.mp4 AAC: ${got.channels[0].length} samples (header: 80000; libavcodec keeps the last frame's padding, PyAV gives 80896 too)`);
  t.true(got.channels[0].length >= 80000 && got.channels[0].length <= 80000 + 1024);
  t.true(got.channels[0].some((v) => v !== 0));
  t.true(got.channels[0].every((v) => Math.abs(v) <= 1));
});

test('decodeAudio: a video without audio → ERR_NO_AUDIO_STREAM naming the file', async (t) => {
  const err = await t.throwsAsync(decodeAudio(asset('short_1p2s.mp4')));
  t.is(err.code, 'ERR_NO_AUDIO_STREAM');
  t.true(err.message.includes('short_1p2s.mp4'));
});

test('decodeAudio: a WAV with zero samples → ERR_AUDIO_EMPTY', async (t) => {
  const file = path.join(scratch, 'zero.wav');
  const b = Buffer.alloc(44);
  b.write('RIFF', 0, 'latin1'); b.writeUInt32LE(36, 4); b.write('WAVEfmt ', 8, 'latin1');
  b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(16000, 24);
  b.writeUInt32LE(32000, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write('data', 36, 'latin1');
  fs.writeFileSync(file, b);
  const err = await t.throwsAsync(decodeAudio(file));
  t.is(err.code, 'ERR_AUDIO_EMPTY');
  t.true(err.message.includes('zero.wav'));
});

// --- errors ------------------------------------------------------------------------------------

test('a WAV given to the video decoder → ERR_NO_VIDEO_STREAM', async (t) => {
  for (const decode of [decodeVideoClips, probeVideo]) {
    const err = await t.throwsAsync(decode(asset('dog_audio.wav')));
    t.is(err.code, 'ERR_NO_VIDEO_STREAM');
    t.true(err.message.includes('dog_audio.wav'));
  }
});

test('missing file → ERR_FILE_NOT_FOUND', async (t) => {
  const missing = path.join(scratch, 'nope.mp4');
  for (const decode of [decodeAudio, decodeVideoClips, probeVideo]) {
    const err = await t.throwsAsync(decode(missing));
    t.is(err.code, 'ERR_FILE_NOT_FOUND');
    t.true(err.message.includes(missing));
  }
});

test('0-byte and random-byte files → ERR_MEDIA_DECODE with ffmpeg\'s message, naming the file', async (t) => {
  const empty = path.join(scratch, 'empty.mp4');
  fs.writeFileSync(empty, '');
  const noise = path.join(scratch, 'noise.bin');
  let x = 12345;
  fs.writeFileSync(noise, Uint8Array.from({ length: 8192 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
  for (const file of [empty, noise]) {
    for (const decode of [decodeAudio, decodeVideoClips]) {
      const err = await t.throwsAsync(decode(file));
      t.is(err.code, 'ERR_MEDIA_DECODE');
      t.true(err.message.startsWith(`Cannot decode ${file}: `), err.message);
      // ffmpeg's first line ("moov atom not found" where the .mp4 name makes it try MP4), then its last.
      t.regex(err.message, /Invalid data found when processing input/);
      t.notRegex(err.message, / @ 0x/, 'no pointer values from ffmpeg\'s log prefix');
    }
  }
  const err = await t.throwsAsync(decodeVideoClips(new Uint8Array(0)));
  t.is(err.code, 'ERR_MEDIA_DECODE');
  t.regex(err.message, /<buffer of 0 bytes>: Invalid data/);
  t.false(err.message.includes(os.tmpdir()), 'the temporary file name is not shown');
});

test('a wrong input type is a TypeError', async (t) => {
  const err = await t.throwsAsync(decodeAudio(42));
  t.true(err instanceof TypeError);
  t.regex(err.message, /Expected a file path \(string\) or the file's bytes \(Uint8Array\).*received number/);
});

// --- buffers -----------------------------------------------------------------------------------

test('Buffers decode like paths', async (t) => {
  const fromPath = await decodeVideoClips(asset('photos_5s.mp4'));
  const fromBuf = await decodeVideoClips(new Uint8Array(fs.readFileSync(asset('photos_5s.mp4'))));
  t.deepEqual(fromBuf.meta, fromPath.meta);
  t.is(fromBuf.clips.length, fromPath.clips.length);
  fromPath.clips.forEach((c, k) => {
    const d = fromBuf.clips[k];
    t.deepEqual([d.start, d.end, d.startPts, d.endPts, d.frameCount], [c.start, c.end, c.startPts, c.endPts, c.frameCount]);
    t.deepEqual(d.frames.map((f) => f.pts), c.frames.map((f) => f.pts));
    c.frames.forEach((f, i) => t.true(Buffer.from(d.frames[i].rgb).equals(Buffer.from(f.rgb))));
  });
  t.deepEqual(await probeVideo(fs.readFileSync(asset('short_1p2s.mp4'))), await probeVideo(asset('short_1p2s.mp4')));

  const a = await decodeAudio(asset('dog_audio.wav'));
  const b = await decodeAudio(fs.readFileSync(asset('dog_audio.wav')));
  t.is(b.sampleRate, a.sampleRate);
  t.deepEqual(b.channels, a.channels);
});

// --- abort (serial: the child-process checks must not see other tests' ffmpeg) ------------------

test.serial('an already aborted signal rejects at once: no ffmpeg, no temporary file', async (t) => {
  const ac = new AbortController();
  ac.abort();
  const before = mediaTempDirs();
  for (const start of [
    () => decodeAudio(asset('dog_audio.wav'), { signal: ac.signal }),
    () => decodeVideoClips(asset('photos_5s.mp4'), { signal: ac.signal }),
    () => probeVideo(fs.readFileSync(asset('photos_5s.mp4')), { signal: ac.signal }),
  ]) {
    const err = await t.throwsAsync(start());
    t.is(err.name, 'AbortError');
    t.is(err.code, 'ABORT_ERR');
  }
  t.deepEqual(ffmpegChildren(), []);
  t.deepEqual(mediaTempDirs(), before);
});

test.serial('aborting mid-decode kills ffmpeg, reaps it and removes the temporary file', async (t) => {
  const file = await makeMedia('mpeg4_40s.mp4',
    ['-f', 'lavfi', '-i', 'testsrc=size=640x480:rate=25:duration=40', '-c:v', 'mpeg4', '-q:v', '5']);
  const before = mediaTempDirs();
  for (const input of [file, fs.readFileSync(file)]) {
    const ac = new AbortController();
    let seen = 0;
    let childrenWhileRunning = [];
    const err = await t.throwsAsync(decodeVideoClips(input, {
      signal: ac.signal,
      onProgress: (f) => {
        seen = f;
        if (!ac.signal.aborted) {
          childrenWhileRunning = ffmpegChildren();
          ac.abort();
        }
      },
    }));
    t.is(err.name, 'AbortError');
    t.true(seen < 0.9, `aborted at ${seen}`);
    t.is(childrenWhileRunning.length, 1, 'ffmpeg was running when aborted');
    t.deepEqual(ffmpegChildren(), [], 'no ffmpeg left, not even a zombie');
  }
  t.deepEqual(mediaTempDirs(), before);

  // The same file decodes completely when not aborted (1000 frames, five 2-s clips over 40 s).
  const { meta, clips } = await decodeVideoClips(file);
  t.is(meta.frameCount, 1000);
  t.deepEqual(meta.duration, [40, 1]);
  t.deepEqual(clips.map((c) => c.frameCount), [50, 50, 50, 50, 50]);
});

test.serial('aborting audio decoding mid-way kills ffmpeg', async (t) => {
  const file = await makeMedia('sine_600s.flac',
    ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=600', '-ac', '2', '-c:a', 'flac']);
  const ac = new AbortController();
  const p = decodeAudio(file, { signal: ac.signal });
  setTimeout(() => ac.abort(), 30);
  const err = await t.throwsAsync(p);
  t.is(err.name, 'AbortError');
  t.deepEqual(ffmpegChildren(), []);
});
