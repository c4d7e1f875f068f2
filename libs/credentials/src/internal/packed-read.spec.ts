import { getMetadataArgsStorage } from 'typeorm';
import { CredentialStatus, CredentialType } from '../credential-type';
import { CredentialEntity } from '../entities/credential.entity';
import { detailsOf, readDetailsOf, toMetadata } from './credential-view';
import { exactArrayBuffer, packRead, packRow, PACKED_ROW_FIELDS, unpackRead, UnpackedReads, unpackRow } from './packed-read';

function row(overrides: Partial<CredentialEntity> = {}): CredentialEntity {
  return Object.assign(new CredentialEntity(), {
    id: '0190a3c4-0000-7000-8000-000000000001',
    tenantId: 'tenant-ü',
    integrationId: 'stripe',
    connectionId: 'conn "1"',
    type: CredentialType.CLIENT_CERTIFICATE,
    valueStore: 'vault',
    currentVersion: 3,
    status: CredentialStatus.ACTIVE,
    expiresAt: new Date('2031-02-03T04:05:06.789Z'),
    rotatedAt: new Date('2026-11-30T00:00:00.001Z'),
    tags: { env: 'prod', 'team/name': 'pay ments' },
    valueHint: 'xyz',
    certificate: { subject: 'CN=a', issuer: 'CN=b', serialNumber: '01', fingerprint256: 'ab', validFrom: '2026-01-01T00:00:00.000Z', validTo: '2031-02-03T04:05:06.789Z' },
    vaultGeneration: 2,
    rowVersion: 7,
    createdAt: new Date('2026-01-01T00:00:00.000Z'),
    updatedAt: new Date('2026-11-30T00:00:00.001Z'),
    deletedAt: null,
    createdBy: 'alice',
    updatedBy: 'bob',
    ...overrides,
  } as CredentialEntity);
}

describe('packed reads', () => {
  it('pack every column of CredentialEntity (a column added later must be added here too)', () => {
    const columns = getMetadataArgsStorage()
      .columns.filter((c) => c.target === CredentialEntity)
      .map((c) => c.propertyName);
    expect([...PACKED_ROW_FIELDS].sort()).toEqual([...columns].sort());
  });

  it('give back the value and the row unchanged: Unicode, Dates, nulls, tags, certificate', () => {
    const value = '-----BEGIN CERTIFICATE-----\nMIIB…\n-----END CERTIFICATE-----\n🔑 ключ "quoted" \\ \u0000 end';
    const original = row();
    const { value: back, row: r } = unpackRead(packRead(value, original));
    expect(back).toBe(value);
    expect(r).toEqual({ ...original });
    expect(r.expiresAt).toBeInstanceOf(Date);
    expect(r.createdAt.getTime()).toBe(original.createdAt.getTime());
    // What a read answers is the same from the unpacked row as from the original.
    expect(toMetadata(r, Date.UTC(2027, 0, 1))).toEqual(toMetadata(original, Date.UTC(2027, 0, 1)));
  });

  it('pack a row alone (the metadata cache) and give it back unchanged', () => {
    const original = row();
    expect(unpackRow(packRow(original))).toEqual({ ...original });
  });

  it('keep null dates null, an empty value empty, and an expired status', () => {
    const original = row({ expiresAt: null, rotatedAt: null, certificate: null, valueHint: null, status: CredentialStatus.EXPIRED, tags: {} });
    const { value, row: r } = unpackRead(packRead('', original));
    expect(value).toBe('');
    expect(r).toEqual({ ...original });
    expect(r.expiresAt).toBeNull();
  });

  it('give back columns of every shape as they were: ids in other forms, lone surrogates, numbers of any size, huge strings', () => {
    const odd = [
      row({ id: '0190A3C4-0000-7000-8000-000000000001', createdBy: 'half \uD800 a pair', updatedBy: '\uDC00' }),
      row({ id: 'not-a-uuid', tenantId: '0190a3c4-0000-7000-8000-00000000000f', connectionId: '' }),
      row({ currentVersion: 2 ** 53 - 1, rowVersion: 0, vaultGeneration: 127 }),
      row({ currentVersion: 128, rowVersion: -1, vaultGeneration: 1.5 }),
      row({ createdAt: new Date(-1), expiresAt: new Date(8.64e15), valueHint: 'x'.repeat(70_000), tags: { ['k'.repeat(300)]: 'ü'.repeat(5000) } }),
    ];
    for (const original of odd) {
      const { value, row: r } = unpackRead(packRead('v', original));
      expect(value).toBe('v');
      expect(r).toEqual({ ...original });
    }
  });

  it('pack a row of the bench kind in under 170 bytes (as a JSON tuple: 236; ids as 16 bytes, small numbers as one)', () => {
    const typical = row({ tenantId: 'tenant-123', integrationId: 'integration-5', connectionId: 'connection-12345', type: CredentialType.API_KEY, certificate: null, expiresAt: null, rotatedAt: null, tags: { env: 'prod', team: 't12' }, createdBy: 'bench', updatedBy: 'bench' });
    expect(packRow(typical).byteLength).toBeLessThan(170);
    expect(unpackRow(packRow(typical))).toEqual({ ...typical });
  });

  it('hold the value outside the V8 heap, in one ArrayBuffer of about its size', () => {
    const value = 'v'.repeat(1024);
    const packed = packRead(value, row());
    expect(packed).toBeInstanceOf(ArrayBuffer);
    expect(packed.byteLength).toBeGreaterThan(1024);
    expect(packed.byteLength).toBeLessThan(1024 + 600);
  });

  it('take an ArrayBuffer of exactly the bytes, copying only a slice of a larger one', () => {
    const own = Buffer.allocUnsafeSlow(16);
    expect(exactArrayBuffer(own)).toBe(own.buffer);
    const pooled = Buffer.from('a short string');
    const copy = exactArrayBuffer(pooled);
    expect(copy.byteLength).toBe(pooled.length);
    expect(Buffer.from(copy).toString()).toBe('a short string');
  });

  it('audit a read with the details a spread would give, frozen', () => {
    const r = row();
    const details = readDetailsOf(r);
    expect(details).toEqual({ ...detailsOf(r), version: r.currentVersion });
    expect(Object.isFrozen(details)).toBe(true);
  });
});

describe('UnpackedReads', () => {
  it('unpacks the read of a key once, unpacks afresh for another ArrayBuffer (a new load), and forgets the oldest past its bound', () => {
    let unpacks = 0;
    const reads = new UnpackedReads(2, (p) => {
      unpacks++;
      return unpackRead(p).value;
    });
    const a = packRead('a', row());
    expect(reads.get('t/a', a)).toBe('a');
    expect(reads.get('t/a', a)).toBe('a');
    expect(unpacks).toBe(1);
    // Same key, same bytes, another load: never answered from what the earlier ArrayBuffer unpacked to.
    const a2 = packRead('a2', row());
    expect(reads.get('t/a', a2)).toBe('a2');
    expect(unpacks).toBe(2);
    expect(reads.size).toBe(1);
    reads.get('t/b', packRead('b', row()));
    reads.get('t/c', packRead('c', row()));
    expect(reads.size).toBe(2);
    expect(reads.get('t/a', a2)).toBe('a2');
    expect(unpacks).toBe(5);
    // remember() seeds a read without unpacking it.
    const d = packRead('d', row());
    reads.remember('t/d', d, 'd');
    expect(reads.get('t/d', d)).toBe('d');
    expect(unpacks).toBe(5);
  });

  it('forgets a key (the cache dropped it) and everything (the cache was cleared)', () => {
    const reads = new UnpackedReads(10, (p) => unpackRead(p).value);
    const a = packRead('a', row());
    reads.get('t/a', a);
    reads.get('t/b', packRead('b', row()));
    reads.forget('t/a');
    expect(reads.size).toBe(1);
    reads.forget('t/unknown');
    expect(reads.size).toBe(1);
    reads.forget(null);
    expect(reads.size).toBe(0);
  });
});
