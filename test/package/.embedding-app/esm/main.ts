// An ESM host of the package ("type": "module", TypeScript `module: node20`): named imports from every entry.
// Node links them from what cjs-module-lexer reads in the CommonJS modules — a name it cannot see fails the
// whole import graph at startup (SyntaxError: Named export '…' not found), whatever tsc said.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AuditModule } from '@credential-vault/nest/audit';
import { PersistenceModule } from '@credential-vault/nest/common';
import { CredentialsModule } from '@credential-vault/nest/credentials';
import { KeyVaultModule } from '@credential-vault/nest/key-vault';
import { KeysModule } from '@credential-vault/nest/keys';
import { KeyVaultEmulator } from '@credential-vault/nest/keyvault-emulator';
import { MigrationModule } from '@credential-vault/nest/migration';
import { OAuthRefreshModule } from '@credential-vault/nest/oauth-refresh';
import { RotationModule } from '@credential-vault/nest/rotation';

const named: Record<string, unknown> = {
  './audit': AuditModule,
  './common': PersistenceModule,
  './credentials': CredentialsModule,
  './key-vault': KeyVaultModule,
  './keys': KeysModule,
  './keyvault-emulator': KeyVaultEmulator,
  './migration': MigrationModule,
  './oauth-refresh': OAuthRefreshModule,
  './rotation': RotationModule,
};

// Every entry of the installed package's exports map: `import * as m` sees what `require` sees.
const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(require.resolve('@credential-vault/nest/package.json'), 'utf8')) as { exports: Record<string, unknown> };
const names = (m: object) => Object.keys(m).filter((k) => k !== 'default' && k !== '__esModule').sort();
const entries: Record<string, { required: number; imported: number; missing: string[]; different: string[] }> = {};
for (const entry of Object.keys(pkg.exports).filter((e) => e !== './package.json')) {
  const spec = `@credential-vault/nest${entry.slice(1)}`;
  const esm = (await import(spec)) as Record<string, unknown>;
  const cjs = require(spec) as Record<string, unknown>;
  entries[entry] = {
    required: names(cjs).length,
    imported: names(esm).length,
    missing: names(cjs).filter((n) => !(n in esm)),
    different: names(cjs).filter((n) => n in esm && esm[n] !== cjs[n]),
  };
}
process.stdout.write(`${JSON.stringify({ named: Object.fromEntries(Object.entries(named).map(([e, v]) => [e, typeof v])), entries })}\n`);
