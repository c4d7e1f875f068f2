import Fastify from 'fastify';
import type { CredentialMetadata, CredentialWithValue } from '@app/credentials';
import { CREDENTIAL_METADATA_SCHEMA, CREDENTIAL_WITH_VALUE_SCHEMA } from './credential-response.schemas';

/** What Fastify answers for `body` on a route with `schema` as its 200 response. */
async function served(schema: Record<string, unknown>, body: unknown, status = 200): Promise<string> {
  const app = Fastify({ logger: false });
  app.get('/', { schema: { response: { 200: schema } } }, async () => body);
  // Over a socket, as the host answers (light-my-request's inject needs an ESM module jest cannot load here).
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const res = await fetch(url);
    expect(res.status).toBe(status);
    return await res.text();
  } finally {
    await app.close();
  }
}

const at = (iso: string) => new Date(iso);

function metadata(over: Partial<CredentialMetadata> = {}): CredentialMetadata {
  return {
    id: '4f0c2a4e-9d1b-4c7e-8f3a-2b6d5e7f8a9b',
    tenantId: 'acme',
    integrationId: 'github',
    connectionId: 'org_acme.main',
    type: 'api_key' as CredentialMetadata['type'],
    valueStore: 'vault' as CredentialMetadata['valueStore'],
    version: 3,
    rowVersion: 7,
    status: 'active' as CredentialMetadata['status'],
    expiresAt: at('2031-02-03T04:05:06.007Z'),
    rotatedAt: at('2026-12-01T00:00:00.000Z'),
    tags: { env: 'prod', team: 'core' },
    maskedValue: '***xyz',
    certificate: null,
    createdAt: at('2026-01-02T03:04:05.678Z'),
    updatedAt: at('2026-12-03T08:00:00.001Z'),
    createdBy: 'user:alice',
    updatedBy: 'apikey:ops',
    ...over,
  };
}

const certificate = { subject: 'CN=client', issuer: 'CN=ca', serialNumber: '0a', fingerprint256: 'AB:CD', validFrom: at('2026-01-01T00:00:00.000Z'), validTo: at('2027-01-01T00:00:00.000Z') };

const awkward = ['', 'a"b\\c', 'line\nbreak\ttab\u0000nul', 'lone \ud800 surrogate', 'emoji 😀 and é', '\u2028\u2029', 'x'.repeat(41), `${'y'.repeat(60)}"`, 'z'.repeat(6000)];

describe('credential response schemas', () => {
  it.each([
    ['every field set, with a certificate', metadata({ certificate })],
    ['no expiry, never rotated, no tags', metadata({ expiresAt: null, rotatedAt: null, tags: {} })],
    ['awkward tag keys and values', metadata({ tags: Object.fromEntries(awkward.map((s, i) => [`${s}${i}`, s])) })],
    ['dates outside four-digit years and before 1970', metadata({ expiresAt: at('+012345-01-01T00:00:00.000Z'), rotatedAt: at('0099-12-31T23:59:59.999Z'), createdAt: at('1969-07-20T20:17:40.000Z') })],
  ])('the metadata route writes exactly what JSON.stringify writes: %s', async (_label, m) => {
    expect(await served(CREDENTIAL_METADATA_SCHEMA, m)).toBe(JSON.stringify(m));
  });

  it.each(awkward.map((v) => [JSON.stringify(v).slice(0, 30), v]))('the value route writes the value byte for byte: %s', async (_label, value) => {
    const body: CredentialWithValue = { value, metadata: metadata() };
    const payload = await served(CREDENTIAL_WITH_VALUE_SCHEMA, body);
    expect(payload).toBe(JSON.stringify(body));
    expect(JSON.parse(payload).value).toBe(value);
  });

  it('is a whitelist: a property the model does not have never leaves the process', async () => {
    const leaky = { ...metadata({ certificate }), internalNote: 'not for clients', certificate: { ...certificate, pem: 'x' } };
    const answered = JSON.parse(await served(CREDENTIAL_METADATA_SCHEMA, leaky));
    expect(answered).not.toHaveProperty('internalNote');
    expect(answered.certificate).toEqual(JSON.parse(JSON.stringify(certificate)));
    const withValue = { value: 'v', metadata: metadata(), debug: 'x' };
    expect(JSON.parse(await served(CREDENTIAL_WITH_VALUE_SCHEMA, withValue))).toEqual({ value: 'v', metadata: JSON.parse(JSON.stringify(metadata())) });
  });

  it('fails (500) rather than answer without a field the OpenAPI document says is always there', async () => {
    const { rotatedAt: _dropped, ...incomplete } = metadata();
    expect(await served(CREDENTIAL_METADATA_SCHEMA, incomplete, 500)).not.toContain('"id"');
  });
});
