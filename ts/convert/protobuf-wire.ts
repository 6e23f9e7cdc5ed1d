// A bounded reader of the protocol buffers wire format, for the one protobuf file we read
// (SentencePiece's tokenizer.model). Why not a library: protobufjs alone was 4 MB of the user's
// install (over the 30 MB budget of issue 11), and the small readers (pbf) do not check lengths read
// from the file against the buffer, which a hostile file must not get past. Every length here is
// checked against the end of the message that holds it.
import { ImageBindError } from '../errors';

/** Wire types (https://protobuf.dev/programming-guides/encoding/). */
export const WIRE = { VARINT: 0, FIXED64: 1, LEN: 2, FIXED32: 5 } as const;

export class WireError extends ImageBindError {
  constructor(message: string) {
    super('ERR_PROTOBUF_INVALID', message);
  }
}

/** One field as met in a message: its number, wire type and a reader positioned at its value. */
export interface WireField {
  field: number;
  wire: number;
  /** The value as an unsigned 64-bit varint folded to a JS number (VARINT fields). */
  varint(): number;
  /** The value as a signed int32 (protobuf's int32: negative numbers are 10-byte varints). */
  int32(): number;
  float(): number;
  bytes(): Uint8Array;
  string(): string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Calls `onField` for every field of the message in bytes[start, end); unknown fields are skipped. */
export function readMessage(bytes: Uint8Array, onField: (f: WireField) => void, start = 0, end = bytes.length): void {
  let pos = start;
  const need = (n: number): void => {
    if (n > end - pos) throw new WireError(`a field runs past the end of its message (byte ${pos}, ${n} more needed, ${end - pos} left)`);
  };
  const readVarint = (): { lo: number; hi: number } => {
    let lo = 0, hi = 0;
    for (let i = 0; i < 10; i++) {
      need(1);
      const b = bytes[pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) { lo |= (b & 0x0f) << 28; hi |= (b & 0x7f) >> 4; }
      else hi |= (b & 0x7f) << (7 * i - 32);
      if (!(b & 0x80)) return { lo: lo >>> 0, hi: hi >>> 0 };
    }
    throw new WireError(`a varint at byte ${pos - 10} is longer than 10 bytes`);
  };
  while (pos < end) {
    const key = readVarint();
    const wire = key.lo & 7;
    const field = key.hi ? -1 : key.lo >>> 3;
    if (field <= 0) throw new WireError(`field number ${field} at byte ${pos} is not valid`);
    let valueStart = pos, valueEnd = pos;
    let v: { lo: number; hi: number } | undefined;
    if (wire === WIRE.VARINT) { v = readVarint(); valueEnd = pos; }
    else if (wire === WIRE.FIXED64) { need(8); valueEnd = pos += 8; }
    else if (wire === WIRE.FIXED32) { need(4); valueEnd = pos += 4; }
    else if (wire === WIRE.LEN) {
      const n = readVarint();
      if (n.hi) throw new WireError(`a length at byte ${pos} is over 4 GiB`);
      need(n.lo);
      valueStart = pos;
      valueEnd = pos += n.lo;
    } else throw new WireError(`wire type ${wire} (groups or unknown) at byte ${pos} is not supported`);
    const vs = valueStart, ve = valueEnd, val = v;
    const expect = (w: number, what: string): void => {
      if (wire !== w) throw new WireError(`field ${field} holds wire type ${wire}, expected ${what}`);
    };
    onField({
      field, wire,
      varint: () => { expect(WIRE.VARINT, 'a varint'); return val!.hi * 2 ** 32 + val!.lo; },
      int32: () => { expect(WIRE.VARINT, 'a varint'); return val!.lo | 0; },
      float: () => { expect(WIRE.FIXED32, 'a 32-bit float'); return new DataView(bytes.buffer, bytes.byteOffset + vs, 4).getFloat32(0, true); },
      bytes: () => { expect(WIRE.LEN, 'bytes'); return bytes.subarray(vs, ve); },
      string: () => {
        expect(WIRE.LEN, 'a string');
        try {
          return utf8.decode(bytes.subarray(vs, ve));
        } catch {
          throw new WireError(`field ${field} at byte ${vs} is not valid UTF-8`);
        }
      },
    });
  }
}

/** The nested message of a LEN field, read with `onField`. */
export function readNested(f: WireField, onField: (g: WireField) => void): void {
  const b = f.bytes();
  readMessage(b, onField);
}
