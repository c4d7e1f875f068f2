import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';

/**
 * Where a stored value must never show up in plaintext. A marker is searched for as it is, and base64
 * and base64url encoded at each of the three byte alignments it can have inside a longer encoding.
 */
export function needles(marker: string): string[] {
  const out = new Set<string>([marker]);
  for (let pad = 0; pad < 3; pad++) {
    const b64 = Buffer.from(`${'\0'.repeat(pad)}${marker}`).toString('base64');
    // Drop the characters that also depend on the bytes around the marker.
    const core = b64.slice(Math.ceil((pad * 4) / 3) + 1, -4);
    out.add(core);
    out.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...out];
}

/** A haystack scanner for many markers at once: the name of each place a marker was found. */
export class MarkerScan {
  readonly hits: string[] = [];
  private readonly patterns: { marker: string; needle: string }[];

  constructor(markers: Iterable<string>) {
    this.patterns = [...markers].flatMap((marker) => needles(marker).map((needle) => ({ marker, needle })));
  }

  get markers(): number {
    return new Set(this.patterns.map((p) => p.marker)).size;
  }

  scan(place: string, haystack: string | Buffer): void {
    const text = typeof haystack === 'string' ? haystack : haystack.toString('latin1');
    const utf16 = typeof haystack === 'string' ? '' : haystack.toString('utf16le');
    for (const { marker, needle } of this.patterns) {
      if (text.includes(needle) || (utf16 && utf16.includes(needle))) this.hits.push(`${place} holds marker ${marker.slice(0, 8)}… (${needle === marker ? 'plain' : 'base64'})`);
    }
  }

  /** Every file under `dir` whose name matches (SQLite database, its WAL and shared memory, logs). */
  scanFiles(dir: string, match: RegExp): number {
    let n = 0;
    for (const name of readdirSync(dir, { recursive: true }) as string[]) {
      const path = join(dir, name);
      if (!match.test(name) || !statSync(path).isFile()) continue;
      this.scan(`file ${name}`, readFileSync(path));
      n++;
    }
    return n;
  }

  /** Every row of every table of a PostgreSQL schema, as JSON text. */
  async scanPostgresSchema(url: string, schema: string): Promise<number> {
    const pg = new Client({ connectionString: url });
    await pg.connect();
    try {
      const tables = (await pg.query<{ t: string }>('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1', [schema])).rows;
      for (const { t } of tables) {
        const rows = (await pg.query<{ j: string }>(`SELECT row_to_json(x)::text AS j FROM "${schema}"."${t}" x`)).rows;
        this.scan(`table ${t}`, rows.map((r) => r.j).join('\n'));
      }
      return tables.length;
    } finally {
      await pg.end();
    }
  }

  /** Every key under `prefix` in Redis, whatever its type. */
  async scanRedis(url: string, prefix: string): Promise<number> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    try {
      const keys = await redis.keys(`${prefix}*`);
      for (const key of keys) {
        const type = await redis.type(key);
        const parts: (string | Buffer)[] =
          type === 'string'
            ? [(await redis.getBuffer(key)) ?? Buffer.alloc(0)]
            : type === 'hash'
              ? Object.entries(await redis.hgetallBuffer(key)).flat()
              : type === 'list'
                ? await redis.lrangeBuffer(key, 0, -1)
                : type === 'set'
                  ? await redis.smembersBuffer(key)
                  : type === 'zset'
                    ? await redis.zrangeBuffer(key, 0, -1)
                    : [];
        this.scan(`redis ${type} ${key.slice(prefix.length)}`, Buffer.concat([Buffer.from(key), ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))]));
      }
      return keys.length;
    } finally {
      redis.disconnect();
    }
  }
}
