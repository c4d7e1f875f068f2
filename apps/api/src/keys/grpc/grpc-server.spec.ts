import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Transport } from '@nestjs/microservices';
import { keysGrpcOptions, protoRoot } from './grpc-server';

describe('keys gRPC server options', () => {
  const repo = resolve(__dirname, '../../../../..');

  it('finds proto/ from the sources and from a build under dist/', () => {
    expect(protoRoot()).toBe(join(repo, 'proto'));
    expect(protoRoot(join(repo, 'dist/apps/api/src/keys/grpc'))).toBe(join(repo, 'proto'));
  });

  it('says what is missing when the host was shipped without proto/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cv-noproto-'));
    try {
      expect(() => protoRoot(dir)).toThrow(/proto\/credential_vault\/keys\/v1\/keys.proto was not found .* ship the proto\/ directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('listens on GRPC_HOST:GRPC_PORT (IPv6 literals bracketed) with the keys package', () => {
    expect(keysGrpcOptions({ host: '127.0.0.1', port: 50051 })).toMatchObject({
      transport: Transport.GRPC,
      options: { package: 'credential_vault.keys.v1', url: '127.0.0.1:50051' },
    });
    // keys.proto, as the server loads it (Nest is handed the definition, not the file).
    expect(Object.keys(keysGrpcOptions({ host: '127.0.0.1', port: 50051 }).options.packageDefinition ?? {})).toContain('credential_vault.keys.v1.KeysService');
    expect(keysGrpcOptions({ host: '::1', port: 6000 }).options.url).toBe('[::1]:6000');
  });
});
