// Which kind of input a file is, from its first bytes (magic numbers) and its extension.
//
// The content decides where it can: a PNG named .jpg is an image, a WAV named .bin is audio.  Where
// the content is ambiguous (a text point cloud, an .npy array) the extension and the array's shape
// decide.  A file whose extension promises media but whose content is not that media is reported, not
// silently ignored: that is how a corrupt or truncated download shows up.
import type { InputKind } from '../encoder';

/** The kinds a media index holds (text is a query, not a file). */
export type MediaKind = Exclude<InputKind, 'text'>;
export const MEDIA_KINDS: readonly MediaKind[] = ['image', 'video', 'audio', 'depth', 'thermal', 'imu', 'point'];

/** Bytes read from the start of a file to recognise it. */
export const SNIFF_BYTES = 512;

export type Recognised =
  | { kind: MediaKind }
  /** The extension names media, the content is not that media. */
  | { kind: null; problem: string }
  /** Not media this package reads: skipped without a message. */
  | null;

const IMAGE_EXT = new Set(['jpg', 'jpeg', 'jpe', 'jfif', 'png', 'gif', 'bmp', 'psd', 'ppm', 'pgm', 'pbm', 'pnm', 'hdr', 'tga']);
const VIDEO_EXT = new Set(['mp4', 'm4v', 'mov', 'mkv', 'webm', 'avi', 'mpg', 'mpeg', 'ts', 'mts', 'm2ts', 'flv', 'ogv', '3gp', 'wmv']);
const AUDIO_EXT = new Set(['wav', 'wave', 'flac', 'mp3', 'ogg', 'oga', 'opus', 'm4a', 'aac', 'aif', 'aiff', 'mka', 'weba', 'wma']);
const POINT_EXT = new Set(['ply', 'pcd', 'xyz', 'pts', 'obj']);

function ascii(b: Uint8Array, start: number, end: number): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1', start, end);
}

function startsWith(b: Uint8Array, bytes: number[], at = 0): boolean {
  return b.length >= at + bytes.length && bytes.every((x, i) => b[at + i] === x);
}

/** ISO-BMFF (MP4, MOV, M4A, 3GP): 'ftyp' at offset 4; audio-only brands say so. */
function isoKind(b: Uint8Array): MediaKind | undefined {
  if (b.length < 12 || ascii(b, 4, 8) !== 'ftyp') return undefined;
  const brand = ascii(b, 8, 12);
  return ['M4A ', 'M4B ', 'M4P ', 'F4A ', 'F4B '].includes(brand) ? 'audio' : 'video';
}

/** PNG: a 16-bit single-channel image is a depth map (how depth sensors and the fixtures store them). */
function pngKind(b: Uint8Array): MediaKind {
  // IHDR follows the 8-byte signature: length(4) 'IHDR'(4) width(4) height(4) bit depth(1) colour type(1).
  const bitDepth = b[24], colourType = b[25];
  return b.length >= 26 && ascii(b, 12, 16) === 'IHDR' && bitDepth === 16 && colourType === 0 ? 'depth' : 'image';
}

/** .npy: (6, L) or (1, 6, L) is an IMU trace; (N, 3…6) or (1, N, 3…6) a point cloud. */
function npyKind(b: Uint8Array): MediaKind | undefined {
  const header = ascii(b, 0, b.length);
  const m = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!m) return undefined;
  const dims = m[1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const shape = dims[0] === 1 && dims.length === 3 ? dims.slice(1) : dims;
  if (shape.length !== 2 || !/'descr':\s*'[<|]f[48]'/.test(header)) return undefined;
  if (shape[0] === 6 && shape[1]! > 6) return 'imu';
  if (shape[1]! >= 3 && shape[1]! <= 6 && shape[0]! > shape[1]!) return 'point';
  return undefined;
}

function magicKind(b: Uint8Array): MediaKind | undefined {
  if (startsWith(b, [0xff, 0xd8, 0xff])) return 'image';
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return pngKind(b);
  const head4 = ascii(b, 0, 4);
  if (head4 === 'GIF8' || head4 === '8BPS' || ascii(b, 0, 2) === 'BM' || /^#\?(RADIANCE|RGBE)/.test(ascii(b, 0, 10))) return 'image';
  if (/^P[1-6]\s/.test(ascii(b, 0, 3))) return 'image';  // PNM
  if (head4 === 'RIFF') {
    const form = ascii(b, 8, 12);
    if (form === 'WAVE') return 'audio';
    if (form === 'AVI ') return 'video';
    return undefined;
  }
  if (head4 === 'fLaC' || ascii(b, 0, 3) === 'ID3' || (head4 === 'FORM' && /^AIF[FC]$/.test(ascii(b, 8, 12)))) return 'audio';
  if (startsWith(b, [0x1a, 0x45, 0xdf, 0xa3])) return 'video';  // Matroska / WebM (audio-only ones by extension below)
  if (head4 === 'OggS') return 'audio';                          // Ogg video (.ogv) by extension below
  if (startsWith(b, [0x30, 0x26, 0xb2, 0x75])) return 'video';  // ASF / WMV
  if (ascii(b, 0, 3) === 'FLV') return 'video';
  if (b[0] === 0x47 && b[188] === 0x47) return 'video';        // MPEG transport stream: a sync byte every 188
  if (startsWith(b, [0x00, 0x00, 0x01, 0xba])) return 'video';  // MPEG program stream
  const iso = isoKind(b);
  if (iso) return iso;
  if (startsWith(b, [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])) return npyKind(b);
  if (/^ply\r?\n/.test(ascii(b, 0, 5)) || /^(# \.PCD|VERSION )/.test(ascii(b, 0, 10))) return 'point';
  // MPEG audio frame sync (MP3 without ID3, ADTS AAC): 11 set bits.
  if (b.length >= 2 && b[0] === 0xff && (b[1]! & 0xe0) === 0xe0) return 'audio';
  return undefined;
}

/** A text file whose first line holds three numbers: an ASCII point list (.xyz / .pts). */
function looksLikeXyz(b: Uint8Array): boolean {
  const first = ascii(b, 0, b.length).split(/\r?\n/).find((l) => l.trim() && !l.startsWith('#'));
  if (!first) return false;
  const nums = first.trim().split(/[\s,]+/);
  return nums.length >= 3 && nums.slice(0, 3).every((x) => Number.isFinite(Number(x)));
}

/**
 * Recognises a file from its first bytes (up to SNIFF_BYTES) and its name.  Returns the kind, a
 * problem (media extension, other content), or null (not media).
 */
export function recognise(name: string, head: Uint8Array): Recognised {
  const dot = name.lastIndexOf('.');
  const ext = dot >= 0 ? name.slice(dot + 1).toLowerCase() : '';
  let kind = magicKind(head);
  if (kind === 'video' && (ext === 'mka' || ext === 'weba')) kind = 'audio';
  if (kind === 'audio' && head[0] === 0x4f && ext === 'ogv') kind = 'video';
  if (!kind && (ext === 'xyz' || ext === 'pts') && looksLikeXyz(head)) kind = 'point';
  if (!kind && ext === 'obj' && /^(#|v |o |g |mtllib )/m.test(ascii(head, 0, head.length))) kind = 'point';
  if (!kind && ext === 'tga') kind = 'image';  // TGA has no magic number
  if (kind) return { kind };
  if (head.length === 0 && (IMAGE_EXT.has(ext) || VIDEO_EXT.has(ext) || AUDIO_EXT.has(ext) || POINT_EXT.has(ext))) {
    return { kind: null, problem: 'the file is empty' };
  }
  if (IMAGE_EXT.has(ext)) return { kind: null, problem: `not an image: the content is not JPEG, PNG, GIF, BMP, PSD, PNM or HDR` };
  if (VIDEO_EXT.has(ext) || AUDIO_EXT.has(ext)) return { kind: null, problem: `the content is not a ${VIDEO_EXT.has(ext) ? 'video' : 'audio'} container this package recognises` };
  if (POINT_EXT.has(ext)) return { kind: null, problem: 'not a point cloud this package reads' };
  return null;
}
