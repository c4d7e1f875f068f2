import fc from 'fast-check';
import { isSensitiveKey, sanitiseDetails } from './sanitize-details';

const SECRET = 'S3cr3t-Value-That-Must-Never-Leak';

describe('sanitiseDetails', () => {
  it('strips members whose key looks like a credential value, at any depth, and says which', () => {
    const { details, redacted } = sanitiseDetails({
      integration: 'github',
      value: SECRET,
      nested: { clientSecret: SECRET, refresh_token: SECRET, 'Access-Token': SECRET, list: [{ password: SECRET }, { privateKey: SECRET }] },
      apiKey: SECRET,
      Authorization: `Bearer ${SECRET}`,
    });
    expect(JSON.stringify(details)).not.toContain(SECRET);
    expect(details).toMatchObject({ integration: 'github' });
    expect(redacted.sort()).toEqual(
      ['Authorization', 'apiKey', 'nested.Access-Token', 'nested.clientSecret', 'nested.list[0].password', 'nested.list[1].privateKey', 'nested.refresh_token', 'value'].sort(),
    );
    expect(details?._redacted).toEqual(expect.arrayContaining(['value', 'nested.clientSecret']));
  });

  it('keeps metadata about secrets (names, ids, types, expiry)', () => {
    for (const k of ['secretName', 'secretVersion', 'tokenType', 'tokenExpiresAt', 'credentialId', 'passwordPolicy', 'integration', 'scopes']) {
      expect(isSensitiveKey(k)).toBe(false);
    }
    for (const k of ['value', 'secret', 'token', 'password', 'privateKey', 'client_secret', 'refreshToken', 'accessToken', 'webhookSecret', 'key', 'apiKey', 'idToken', 'SECRET_VALUE']) {
      expect(isSensitiveKey(k)).toBe(true);
    }
  });

  it('keeps booleans under credential-looking keys (a flag cannot carry a secret), and strips anything else there', () => {
    const { details, redacted } = sanitiseDetails({ refreshTokenRotated: true, hasPassword: false, refreshToken: 'rt-123', token: 42 });
    expect(details).toMatchObject({ refreshTokenRotated: true, hasPassword: false });
    expect(details).not.toHaveProperty('refreshToken');
    expect(details).not.toHaveProperty('token');
    expect(redacted).toEqual(['refreshToken', 'token']);
  });

  it('strips values that look like secrets whatever their key (PEM private key, JWT, bearer header)', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----';
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    const { details } = sanitiseDetails({ note: pem, header: `Bearer ${SECRET}`, claims: jwt, ok: 'plain text' });
    const s = JSON.stringify(details);
    expect(s).not.toContain('BEGIN PRIVATE KEY');
    expect(s).not.toContain(SECRET);
    expect(s).not.toContain(jwt);
    expect(details).toMatchObject({ ok: 'plain text' });
  });

  it('gives a flat object of primitives (the usual event details) exactly what the general walk gives it (property)', () => {
    const key = fc.oneof(fc.constantFrom('version', 'type', 'token', 'secretName', 'password', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc'), fc.string({ minLength: 1, maxLength: 12 }));
    const value = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom(`Bearer ${SECRET}`, '\u0000nul', 'lone \uD800', 'x'.repeat(1100), Number.NaN, Infinity, undefined),
      fc.double(),
      fc.boolean(),
    );
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 12 }), (flat) => {
        const direct = sanitiseDetails(flat);
        // Nested one level down, the same members go through the general walk (an empty key names the
        // root there, hence keys of at least one character).
        const walked = sanitiseDetails({ x: flat });
        expect(direct.redacted).toEqual(walked.redacted.map((p) => p.replace(/^x\./, '')));
        const { _redacted: _, ...walkedRoot } = walked.details ?? {};
        expect(direct.details === null ? {} : { ...direct.details, _redacted: undefined }).toEqual({ ...((walkedRoot.x as object) ?? {}), _redacted: undefined });
      }),
    );
  });

  it('gives an object it sees again (a cached read\'s details) the same frozen result; one that can change is re-checked against its members every time', () => {
    const cached = Object.freeze({ integrationId: 'github', type: 'api_key', version: 3 });
    const first = sanitiseDetails(cached);
    expect(first).toEqual({ details: { integrationId: 'github', type: 'api_key', version: 3 }, redacted: [] });
    expect(sanitiseDetails(cached).details).toBe(first.details);
    expect(Object.isFrozen(first.details)).toBe(true);

    // Frozen, but a getter: it can answer differently next time, so it is still re-checked.
    let note = 'fine';
    const tricky = Object.freeze({
      integrationId: 'github',
      get note() {
        return note;
      },
    });
    sanitiseDetails(tricky);
    expect(sanitiseDetails(tricky).details).toEqual({ integrationId: 'github', note: 'fine' });
    note = `Bearer ${SECRET}`;
    expect(sanitiseDetails(tricky)).toEqual({ details: { integrationId: 'github', _redacted: ['note'] }, redacted: ['note'] });

    // Not frozen: remembered once seen twice; a secret added afterwards is still stripped.
    const open: Record<string, unknown> = { integrationId: 'github', version: 3 };
    sanitiseDetails(open);
    const again = sanitiseDetails(open).details;
    expect(sanitiseDetails(open).details).toBe(again);
    open.note = `Bearer ${SECRET}`;
    expect(sanitiseDetails(open)).toEqual({ details: { integrationId: 'github', version: 3, _redacted: ['note'] }, redacted: ['note'] });
    open.token = SECRET;
    expect(sanitiseDetails(open)).toEqual({ details: { integrationId: 'github', version: 3, _redacted: ['note', 'token'] }, redacted: ['note', 'token'] });
  });

  it('gives an object changed between calls exactly what a fresh copy of it gets (property)', () => {
    const key = fc.constantFrom('version', 'type', 'token', 'note', 'secretName', 'n');
    const value = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(`Bearer ${SECRET}`, 'lone \uD800', -0, 0, Number.NaN, undefined), fc.integer(), fc.boolean());
    const step = fc.oneof(
      fc.record({ set: key, to: value }),
      fc.record({ remove: key }),
      fc.constant({ sanitise: true }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.array(step, { maxLength: 30 }), (prototypeLess, steps) => {
        const obj: Record<string, unknown> = prototypeLess ? Object.create(null) : {};
        for (const st of steps) {
          if ('set' in st) obj[st.set] = st.to;
          else if ('remove' in st) delete obj[st.remove];
          else {
            const fresh: Record<string, unknown> = prototypeLess ? Object.create(null) : {};
            Object.assign(fresh, obj);
            expect(sanitiseDetails(obj)).toEqual(sanitiseDetails(fresh));
          }
        }
      }),
    );
  });

  it('never lets an injected credential through, wherever it is placed (property)', () => {
    const sensitiveKey = fc.constantFrom('value', 'secret', 'token', 'password', 'privateKey', 'clientSecret', 'refreshToken', 'accessToken', 'api_key', 'x-api-key');
    const safeKey = fc.stringMatching(/^[a-z]{1,8}$/).filter((k) => !isSensitiveKey(k));
    fc.assert(
      fc.property(fc.array(safeKey, { maxLength: 4 }), sensitiveKey, fc.dictionary(safeKey, fc.jsonValue({ maxDepth: 2 })), (path, key, noise) => {
        const root: Record<string, unknown> = { ...noise };
        let cur = root;
        for (const p of path) {
          cur[p] = { ...(typeof cur[p] === 'object' && cur[p] && !Array.isArray(cur[p]) ? (cur[p] as object) : {}) };
          cur = cur[p] as Record<string, unknown>;
        }
        cur[key] = SECRET;
        const { details } = sanitiseDetails(root);
        expect(JSON.stringify(details ?? {})).not.toContain(SECRET);
      }),
    );
  });

  it('turns input into bounded plain JSON', () => {
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const { details } = sanitiseDetails({
      when: new Date('2026-01-01T00:00:00Z'),
      big: 10n,
      fn: () => 1,
      undef: undefined,
      buf: Buffer.from('key material'),
      long: 'x'.repeat(5000),
      circular,
    });
    expect(details).toMatchObject({ when: '2026-01-01T00:00:00.000Z', big: '10', circular: { a: 1, self: '[circular]' } });
    expect(details).not.toHaveProperty('fn');
    expect(details).not.toHaveProperty('buf');
    expect((details!.long as string).length).toBeLessThan(1100);
    expect(sanitiseDetails(undefined).details).toBeNull();
    expect(sanitiseDetails({}).details).toBeNull();
  });
});
