import { BadRequestException, Controller, UseFilters, UseGuards, UseInterceptors } from '@nestjs/common';
import { GrpcMethod } from '@nestjs/microservices';
import type { Metadata } from '@grpc/grpc-js';
import { KeysService, type CreateKeyRequest, type EncryptionAlgorithm, type KeyDetails, type KeySummary, type SignatureAlgorithm } from '@app/keys';
import { RequireScopes } from '../../auth/auth.decorators';
import { Scope } from '../../auth/scopes';
import { GrpcAuthGuard, grpcOperationContext } from './grpc-auth.guard';
import { GrpcExceptionFilter } from './grpc-exception.filter';
import { KEYS_GRPC_SERVICE } from './grpc-server';
import { RejectUndecodableRequests } from './undecodable-request';

/** `google.protobuf.Timestamp` as proto-loader gives it (longs as strings) and takes it. */
interface Timestamp {
  seconds: string | number;
  nanos: number;
}

type Call = Parameters<typeof grpcOperationContext>[0];

const toTimestamp = (d: Date | undefined): Timestamp | null => {
  if (!d) return null;
  const ms = d.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
};
const fromTimestamp = (t: Timestamp | null | undefined): Date | undefined =>
  t ? new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1_000_000)) : undefined;
/** proto3 has no "unset" for scalars: the empty string and 0 mean "not given". */
const given = <T>(v: T | '' | 0 | undefined | null): T | undefined => (v === '' || v === 0 || v === null ? undefined : v);
/**
 * Tag values as sent. protobuf decodes bytes that are not UTF-8 to U+FFFD instead of refusing them, so a
 * value holding U+FFFD may not be what the client sent: refused (HTTP refuses the bytes themselves).
 */
const sentTags = (tags: Record<string, string>): Record<string, string> => {
  const i = Object.values(tags).findIndex((v) => v.includes('\uFFFD'));
  if (i >= 0) throw new BadRequestException(`the value of tag #${i + 1} is not valid UTF-8 (or holds U+FFFD)`);
  return tags;
};
/** Which key a crypto request names: `version` empty means the latest. */
interface KeyRef {
  name: string;
  version: string;
}
/** A crypto request as the lib takes it: the same fields, `version` unset when empty. */
const selected = <T extends KeyRef>(req: T) => ({ ...req, version: given(req.version) });

/** A listed key: no version (the vault lists keys without one), so KeyItem.version stays empty. */
function keyItem(p: KeySummary) {
  return {
    name: p.name,
    enabled: p.enabled,
    tags: p.tags,
    created_at: toTimestamp(p.createdOn),
    updated_at: toTimestamp(p.updatedOn),
    expires_at: toTimestamp(p.expiresOn),
  };
}

function key(k: KeyDetails) {
  const jwk = k.publicKey;
  return {
    ...keyItem(k),
    version: k.version,
    key_type: k.type,
    key_size: k.size ?? 0,
    curve: k.curve ?? '',
    key_ops: k.keyOps,
    not_before: toTimestamp(k.notBefore),
    public_key: { kid: jwk.kid, kty: jwk.kty, key_ops: jwk.key_ops, n: jwk.n ?? '', e: jwk.e ?? '', crv: jwk.crv ?? '', x: jwk.x ?? '', y: jwk.y ?? '' },
  };
}

/**
 * The keys API over gRPC (proto/credential_vault/keys/v1/keys.proto): the eight operations, each a
 * translation of the message into a KeysService call and back. Auth, scopes and the tenant come from
 * GrpcAuthGuard (the call's metadata); errors become gRPC statuses in GrpcExceptionFilter. A message that
 * did not decode is refused after the guard (RejectUndecodableRequests); the others are passed on as given:
 * KeysService validates them (names, algorithms, digest sizes, key state).
 */
@Controller()
@UseGuards(GrpcAuthGuard)
@UseInterceptors(RejectUndecodableRequests)
@UseFilters(GrpcExceptionFilter)
export class KeysGrpcController {
  constructor(private readonly keys: KeysService) {}

  @GrpcMethod(KEYS_GRPC_SERVICE, 'CreateKey')
  @RequireScopes(Scope.KEYS_WRITE)
  async createKey(req: { name: string; key_type: string; key_size: number; curve: string; key_ops: string[]; tags: Record<string, string>; expires_at: Timestamp | null }, _md: Metadata, call: Call) {
    const request = {
      name: req.name,
      type: req.key_type,
      size: given(req.key_size),
      curve: given(req.curve),
      keyOps: req.key_ops.length > 0 ? req.key_ops : undefined,
      tags: sentTags(req.tags),
      expiresOn: fromTimestamp(req.expires_at),
    } as CreateKeyRequest;
    return key(await this.keys.createKey(grpcOperationContext(call), request));
  }

  @GrpcMethod(KEYS_GRPC_SERVICE, 'GetKey')
  @RequireScopes(Scope.KEYS_READ)
  async getKey(req: KeyRef, _md: Metadata, call: Call) {
    return key(await this.keys.getKey(grpcOperationContext(call), req.name, given(req.version)));
  }

  @GrpcMethod(KEYS_GRPC_SERVICE, 'ListKeys')
  @RequireScopes(Scope.KEYS_READ)
  async listKeys(req: { page_size: number; page_token: string; tags: Record<string, string> }, _md: Metadata, call: Call) {
    const tags = Object.keys(req.tags).length > 0 ? sentTags(req.tags) : undefined;
    const page = await this.keys.listKeys(grpcOperationContext(call), { maxPageSize: given(req.page_size), continuationToken: given(req.page_token), tags });
    return { keys: page.items.map(keyItem), next_page_token: page.continuationToken ?? '' };
  }

  @GrpcMethod(KEYS_GRPC_SERVICE, 'DeleteKey')
  @RequireScopes(Scope.KEYS_WRITE)
  async deleteKey(req: { name: string }, _md: Metadata, call: Call) {
    const d = await this.keys.deleteKey(grpcOperationContext(call), req.name);
    return { name: d.name, deleted_at: toTimestamp(d.deletedOn), scheduled_purge_at: toTimestamp(d.scheduledPurgeDate) };
  }

  // The crypto messages carry the lib's own field names; the answers' extra fields (e.g. `name`) are not in the proto and are not sent.
  @GrpcMethod(KEYS_GRPC_SERVICE, 'Sign')
  @RequireScopes(Scope.KEYS_USE)
  sign(req: KeyRef & { algorithm: SignatureAlgorithm; digest: Buffer }, _md: Metadata, call: Call) {
    return this.keys.sign(grpcOperationContext(call), selected(req));
  }

  @GrpcMethod(KEYS_GRPC_SERVICE, 'Verify')
  @RequireScopes(Scope.KEYS_USE)
  async verify(req: KeyRef & { algorithm: SignatureAlgorithm; digest: Buffer; signature: Buffer }, _md: Metadata, call: Call) {
    const { valid, version, verifiedIn } = await this.keys.verify(grpcOperationContext(call), selected(req));
    return { valid, version, verified_in: verifiedIn };
  }

  @GrpcMethod(KEYS_GRPC_SERVICE, 'Encrypt')
  @RequireScopes(Scope.KEYS_USE)
  encrypt(req: KeyRef & { algorithm: EncryptionAlgorithm; plaintext: Buffer }, _md: Metadata, call: Call) {
    return this.keys.encrypt(grpcOperationContext(call), selected(req));
  }

  @GrpcMethod(KEYS_GRPC_SERVICE, 'Decrypt')
  @RequireScopes(Scope.KEYS_USE)
  decrypt(req: KeyRef & { algorithm: EncryptionAlgorithm; ciphertext: Buffer }, _md: Metadata, call: Call) {
    return this.keys.decrypt(grpcOperationContext(call), selected(req));
  }
}
