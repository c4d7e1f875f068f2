import type { CredentialEntity } from '../entities/credential.entity';

/**
 * A cached read packed into one ArrayBuffer: a 4-byte length, the value's UTF-8 bytes, then the row's
 * columns, each a tag byte and its bytes (below). As objects (a value string, the row with its Dates and
 * tags, the audit details) a read cost ~2.9 KB of heap; packed, its bytes and no more, kept outside V8's
 * heap by the cache (docs/BENCHMARKS.md, Scale). Values are well-formed Unicode (the validator refuses
 * lone surrogates), so UTF-8 gives back the same string; a column that is not goes as JSON, which escapes it.
 */

/** Every column of CredentialEntity, in tuple order (packed-read.spec checks that none is missing). */
export const PACKED_ROW_FIELDS = [
  'id',
  'tenantId',
  'integrationId',
  'connectionId',
  'type',
  'valueStore',
  'currentVersion',
  'status',
  'expiresAt',
  'rotatedAt',
  'tags',
  'valueHint',
  'certificate',
  'vaultGeneration',
  'rowVersion',
  'createdAt',
  'updatedAt',
  'deletedAt',
  'createdBy',
  'updatedBy',
] as const satisfies ReadonlyArray<keyof CredentialEntity>;

const HEADER_BYTES = 4;

/** A column's tag: how its bytes read. Dates go as epoch ms and come back as numbers (the unpacker makes them Dates). */
const enum Tag {
  Null = 0,
  /** A varint byte length, then UTF-8. */
  String = 1,
  /** A lowercase UUID's 16 bytes (ids: 38 bytes less than as text). */
  Uuid = 2,
  /** A varint: a non-negative safe integer. */
  Uint = 3,
  /** A float64: any other number, and a Date's epoch ms. */
  Number = 4,
  /** A varint byte length, then JSON (objects, and strings UTF-8 cannot carry). */
  Json = 5,
}

/** A string UTF-8 cannot carry (with the `u` flag a pair is one code point, so only a lone half matches). */
const LONE_SURROGATE = /\p{Surrogate}/u;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The ArrayBuffer alone, without a Buffer view over it (~90 B of heap less per cached credential). */
export type PackedRead = ArrayBuffer;

/** Where a row is encoded before its exact size is known; grown when a row needs more. */
let scratch = Buffer.allocUnsafeSlow(4096);

export function packRead(value: string, row: CredentialEntity): PackedRead {
  const rowBytes = encodeRow(row);
  const valueBytes = Buffer.byteLength(value, 'utf8');
  // Its own allocation: the cache copies it into its slabs, and a load hands it to its caller.
  const packed = Buffer.from(new ArrayBuffer(HEADER_BYTES + valueBytes + rowBytes));
  packed.writeUInt32LE(valueBytes, 0);
  packed.write(value, HEADER_BYTES, 'utf8');
  scratch.copy(packed, HEADER_BYTES + valueBytes, 0, rowBytes);
  return packed.buffer as ArrayBuffer;
}

/** Encodes `row`'s columns into `scratch`; returns how many bytes. */
function encodeRow(row: CredentialEntity): number {
  let at = 0;
  const room = (bytes: number) => {
    if (at + bytes <= scratch.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, at + bytes));
    scratch.copy(grown, 0, 0, at);
    scratch = grown;
  };
  const varint = (n: number) => {
    room(8);
    while (n >= 0x80) {
      scratch[at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    scratch[at++] = n;
  };
  const text = (tag: Tag, t: string) => {
    const bytes = Buffer.byteLength(t, 'utf8');
    room(1);
    scratch[at++] = tag;
    varint(bytes);
    room(bytes);
    at += scratch.write(t, at, 'utf8');
  };
  for (const field of PACKED_ROW_FIELDS) {
    const v: unknown = row[field];
    room(17);
    if (v === null || v === undefined) {
      scratch[at++] = Tag.Null;
    } else if (typeof v === 'string') {
      if (UUID.test(v)) {
        scratch[at++] = Tag.Uuid;
        at += scratch.write(v.replace(/-/g, ''), at, 'hex');
      } else if (!LONE_SURROGATE.test(v)) text(Tag.String, v);
      else text(Tag.Json, JSON.stringify(v));
    } else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
      scratch[at++] = Tag.Uint;
      varint(v);
    } else if (typeof v === 'number' || v instanceof Date) {
      scratch[at++] = Tag.Number;
      at = scratch.writeDoubleLE(typeof v === 'number' ? v : v.getTime(), at);
    } else {
      text(Tag.Json, JSON.stringify(v));
    }
  }
  return at;
}

/** The row's columns from `at`, in PACKED_ROW_FIELDS order. */
function decodeRow(packed: Buffer, at: number): unknown[] {
  const t: unknown[] = [];
  const varint = () => {
    let n = 0;
    let scale = 1;
    for (;;) {
      const byte = packed[at++];
      n += (byte & 0x7f) * scale;
      if (byte < 0x80) return n;
      scale *= 0x80;
    }
  };
  for (let i = 0; i < PACKED_ROW_FIELDS.length; i++) {
    const tag = packed[at++] as Tag;
    if (tag === Tag.Null) t.push(null);
    else if (tag === Tag.Uuid) {
      const hex = packed.toString('hex', at, (at += 16));
      t.push(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`);
    } else if (tag === Tag.Uint) t.push(varint());
    else if (tag === Tag.Number) {
      t.push(packed.readDoubleLE(at));
      at += 8;
    } else {
      const length = varint();
      const text = packed.toString('utf8', at, (at += length));
      t.push(tag === Tag.String ? text : JSON.parse(text));
    }
  }
  return t;
}

/** The bytes of `bytes` as an ArrayBuffer of their own: its backing store when it is exactly that, else a copy. */
export function exactArrayBuffer(bytes: Buffer): ArrayBuffer {
  const whole = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length && bytes.buffer instanceof ArrayBuffer;
  return whole ? (bytes.buffer as ArrayBuffer) : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
}

export function unpackRead(read: PackedRead): { value: string; row: CredentialEntity } {
  const packed = Buffer.from(read);
  const valueEnd = HEADER_BYTES + packed.readUInt32LE(0);
  const t = decodeRow(packed, valueEnd);
  // One literal, so every unpacked row shares one hidden class (the fields in PACKED_ROW_FIELDS order).
  const row: CredentialEntity = {
    id: t[0] as string,
    tenantId: t[1] as string,
    integrationId: t[2] as string,
    connectionId: t[3] as string,
    type: t[4] as CredentialEntity['type'],
    valueStore: t[5] as CredentialEntity['valueStore'],
    currentVersion: t[6] as number,
    status: t[7] as CredentialEntity['status'],
    expiresAt: dateOrNull(t[8]),
    rotatedAt: dateOrNull(t[9]),
    tags: t[10] as Record<string, string>,
    valueHint: t[11] as string | null,
    certificate: t[12] as CredentialEntity['certificate'],
    vaultGeneration: t[13] as number,
    rowVersion: t[14] as number,
    createdAt: new Date(t[15] as number),
    updatedAt: new Date(t[16] as number),
    deletedAt: dateOrNull(t[17]),
    createdBy: t[18] as string,
    updatedBy: t[19] as string,
  };
  return { value: packed.toString('utf8', HEADER_BYTES, valueEnd), row };
}

/** A row alone (the metadata route's cache): packed with an empty value. */
export function packRow(row: CredentialEntity): PackedRead {
  return packRead('', row);
}

export function unpackRow(packed: PackedRead): CredentialEntity {
  return unpackRead(packed).row;
}

const dateOrNull = (ms: unknown): Date | null => (typeof ms === 'number' ? new Date(ms) : null);

/** Reads (or rows) a memo keeps unpacked: enough for a working set read in a loop, 1–3 KB each. */
export const UNPACKED_READS = 1024;

/**
 * The last reads unpacked (bounded, oldest out first), by cache key and the identity of their packed
 * ArrayBuffer: a credential read again and again is unpacked once. A new load packs a new ArrayBuffer,
 * so a read here is only answered for one the cache still hands out. `forget` is wired to the cache's
 * drops, so an invalidated (revoked, rotated) read leaves this memo when it leaves the cache.
 */
export class UnpackedReads<T> {
  private readonly byKey = new Map<string, { packed: PackedRead; read: T }>();

  constructor(
    private readonly max: number,
    private readonly unpack: (packed: PackedRead) => T,
  ) {}

  get(key: string, packed: PackedRead): T {
    const known = this.byKey.get(key);
    if (known !== undefined && known.packed === packed) return known.read;
    const read = this.unpack(packed);
    this.remember(key, packed, read);
    return read;
  }

  /** `read` as `packed` unpacks, for a load that has both at hand. */
  remember(key: string, packed: PackedRead, read: T): void {
    this.byKey.delete(key);
    this.byKey.set(key, { packed, read });
    if (this.byKey.size > this.max) this.byKey.delete(this.byKey.keys().next().value as string);
  }

  /** Forgets `key`'s read, or every read (`null`). */
  forget(key: string | null): void {
    if (key === null) this.byKey.clear();
    else this.byKey.delete(key);
  }

  get size(): number {
    return this.byKey.size;
  }
}
