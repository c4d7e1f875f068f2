import type { CredentialEntity } from '../entities/credential.entity';

/**
 * A cached read packed into one ArrayBuffer: a 4-byte length, the value's UTF-8 bytes, then the row as
 * a JSON tuple (Dates as epoch ms). Its bytes live outside V8's heap, so 100,000 cached credentials
 * cost about their bytes. As objects (a value string, the row with its Dates and tags, the
 * audit details) they cost ~2.9 KB of heap each, and the heap grew half as much again while filling
 * (docs/BENCHMARKS.md, Scale). Values are well-formed Unicode (the validator refuses lone surrogates),
 * so UTF-8 gives back the same string.
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

/** The ArrayBuffer alone, without a Buffer view over it (~90 B of heap less per cached credential). */
export type PackedRead = ArrayBuffer;

export function packRead(value: string, row: CredentialEntity): PackedRead {
  const tuple = PACKED_ROW_FIELDS.map((f) => {
    const v = row[f];
    return v instanceof Date ? v.getTime() : (v ?? null);
  });
  const json = JSON.stringify(tuple);
  const valueBytes = Buffer.byteLength(value, 'utf8');
  // Its own allocation, freed with the entry. From Node's shared 8 KB pool, each entry kept alive a slab
  // of short-lived buffers too (native memory doubled). Unsafe is safe: every byte is written below.
  const packed = Buffer.allocUnsafeSlow(HEADER_BYTES + valueBytes + Buffer.byteLength(json, 'utf8'));
  packed.writeUInt32LE(valueBytes, 0);
  packed.write(value, HEADER_BYTES, 'utf8');
  packed.write(json, HEADER_BYTES + valueBytes, 'utf8');
  return exactArrayBuffer(packed);
}

/** The bytes of `bytes` as an ArrayBuffer of their own: its backing store when it is exactly that, else a copy. */
export function exactArrayBuffer(bytes: Buffer): ArrayBuffer {
  const whole = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length && bytes.buffer instanceof ArrayBuffer;
  return whole ? (bytes.buffer as ArrayBuffer) : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
}

export function unpackRead(read: PackedRead): { value: string; row: CredentialEntity } {
  const packed = Buffer.from(read);
  const valueEnd = HEADER_BYTES + packed.readUInt32LE(0);
  const t = JSON.parse(packed.toString('utf8', valueEnd)) as unknown[];
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
