import { Controller, Delete, Get, Header, HttpCode, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { OperationContext } from '@app/common';
import { isKeysError, KeysError, KeysService, type KeyPage } from '@app/keys';
import { RequireScopes } from '../auth/auth.decorators';
import { OpContext } from '../auth/operation-context.decorator';
import { Scope } from '../auth/scopes';
import { bodyOf } from '../http/openapi';
import {
  CreateKeyDto,
  DecryptDto,
  EncryptDto,
  ListKeysQueryDto,
  PageQueryDto,
  RestoreKeyDto,
  SignDto,
  UnwrapKeyDto,
  UpdateKeyDto,
  VerifyDto,
  WrapKeyDto,
} from './keys.dto';
import { Body, Param, Query } from '../http/validated-params';

/** Bytes leave as base64url (RFC 4648 §5, no padding), as they came in. */
const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

/** `{ items, nextCursor? }`, the host's paging shape. */
const page = <T>(p: KeyPage<T>) => (p.continuationToken ? { items: p.items, nextCursor: p.continuationToken } : { items: p.items });

/** The lib's paging field is `continuationToken`; an HTTP caller sent `cursor` (as the credentials and audit lists name it). */
const inQueryTerms = (e: unknown): never => {
  if (isKeysError(e) && e.field === 'continuationToken') throw new KeysError(e.code, 'cursor is not a cursor returned by this list', 'cursor');
  throw e;
};

/** `tag=name=value` query entries → the lib's tag filter. */
const tagFilter = (tags: string[] | undefined) => (tags ? Object.fromEntries(tags.map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)])) : undefined);

/**
 * Tenant-scoped Key Vault keys: management and cryptography. Thin: the tenant comes from the
 * authenticated principal, every rule (names, algorithms, digest sizes, key state) lives in
 * KeysService. Binary fields are base64url; responses carrying plaintext are never cached.
 */
@ApiTags('keys')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/keys')
export class KeysController {
  constructor(private readonly keys: KeysService) {}

  @Post()
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'Create a key (RSA 2048/3072/4096 or EC P-256/384/521); answers its public JWK, never private material' })
  @ApiCreatedResponse({ description: 'the key with its public JWK', schema: bodyOf('Key') })
  create(@OpContext() ctx: OperationContext, @Body() dto: CreateKeyDto) {
    return this.keys.createKey(ctx, dto);
  }

  @Get()
  @RequireScopes(Scope.KEYS_READ)
  @ApiOperation({ summary: 'List the tenant keys (latest versions, properties only, without the version id: the vault lists keys without versions), filtered by tags, cursor-paged' })
  @ApiOkResponse({ description: 'one page', schema: bodyOf('KeyPage') })
  async list(@OpContext() ctx: OperationContext, @Query() q: ListKeysQueryDto) {
    return page(await this.keys.listKeys(ctx, { tags: tagFilter(q.tag), maxPageSize: q.limit, continuationToken: q.cursor }).catch(inQueryTerms));
  }

  @Post('restore')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'Restore a key from a backup of this tenant (the name must be free)' })
  @ApiOkResponse({ description: 'the restored key (latest version)', schema: bodyOf('Key') })
  restore(@OpContext() ctx: OperationContext, @Body() dto: RestoreKeyDto) {
    return this.keys.restoreKey(ctx, dto.backup);
  }

  @Get(':name')
  @RequireScopes(Scope.KEYS_READ)
  @ApiOperation({ summary: 'The latest version of a key with its public JWK' })
  @ApiOkResponse({ description: 'the key', schema: bodyOf('Key') })
  get(@OpContext() ctx: OperationContext, @Param('name') name: string) {
    return this.keys.getKey(ctx, name);
  }

  @Get(':name/versions')
  @RequireScopes(Scope.KEYS_READ)
  @ApiOperation({ summary: 'Versions of a key (properties only), cursor-paged' })
  @ApiOkResponse({ description: 'one page', schema: bodyOf('KeyVersionPage') })
  async versions(@OpContext() ctx: OperationContext, @Param('name') name: string, @Query() q: PageQueryDto) {
    return page(await this.keys.listKeyVersions(ctx, name, { maxPageSize: q.limit, continuationToken: q.cursor }).catch(inQueryTerms));
  }

  @Get(':name/versions/:version')
  @RequireScopes(Scope.KEYS_READ)
  @ApiOperation({ summary: 'One version of a key with its public JWK' })
  @ApiOkResponse({ description: 'the key version', schema: bodyOf('Key') })
  getVersion(@OpContext() ctx: OperationContext, @Param('name') name: string, @Param('version') version: string) {
    return this.keys.getKey(ctx, name, version);
  }

  @Patch(':name')
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'Update the latest version: enabled, tags (replaced), dates, key_ops' })
  @ApiOkResponse({ description: 'the key after the change', schema: bodyOf('Key') })
  update(@OpContext() ctx: OperationContext, @Param('name') name: string, @Body() dto: UpdateKeyDto) {
    return this.keys.updateKeyProperties(ctx, name, dto);
  }

  @Patch(':name/versions/:version')
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'Update one version: enabled, tags (replaced), dates, key_ops' })
  @ApiOkResponse({ description: 'the key version after the change', schema: bodyOf('Key') })
  updateVersion(@OpContext() ctx: OperationContext, @Param('name') name: string, @Param('version') version: string, @Body() dto: UpdateKeyDto) {
    return this.keys.updateKeyProperties(ctx, name, { ...dto, version });
  }

  @Post(':name/rotate')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'A new version with the same type, size/curve, operations and tags; earlier versions still decrypt and verify' })
  @ApiOkResponse({ description: 'the new version', schema: bodyOf('Key') })
  rotate(@OpContext() ctx: OperationContext, @Param('name') name: string) {
    return this.keys.rotateKey(ctx, name);
  }

  @Delete(':name')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'Soft-delete every version (recoverable until purged; the name stays taken until then)' })
  @ApiOkResponse({ description: 'deleted, and when it is purged', schema: bodyOf('DeletedKey') })
  remove(@OpContext() ctx: OperationContext, @Param('name') name: string) {
    return this.keys.deleteKey(ctx, name);
  }

  @Post(':name/backup')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_WRITE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'An opaque, vault-protected backup of every version (base64url), restorable in this tenant only' })
  @ApiOkResponse({ description: 'the backup', schema: bodyOf('KeyBackup') })
  async backup(@OpContext() ctx: OperationContext, @Param('name') name: string) {
    return { backup: b64u(await this.keys.backupKey(ctx, name)) };
  }

  @Post(':name/sign')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_USE)
  @ApiOperation({ summary: 'Sign a digest (SHA-256/384/512 of the data) in the vault' })
  @ApiOkResponse({ description: 'the signature and the version that made it', schema: bodyOf('KeySignature') })
  async sign(@OpContext() ctx: OperationContext, @Param('name') name: string, @Body() dto: SignDto) {
    const r = await this.keys.sign(ctx, { name, ...dto });
    return { name: r.name, version: r.version, algorithm: r.algorithm, signature: b64u(r.signature) };
  }

  @Post(':name/verify')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_USE)
  @ApiOperation({ summary: 'Verify a signature over a digest (locally from the public key unless remote=true)' })
  @ApiOkResponse({ description: 'whether the signature is valid (an invalid one is 200 too)', schema: bodyOf('KeyVerification') })
  verify(@OpContext() ctx: OperationContext, @Param('name') name: string, @Body() dto: VerifyDto) {
    return this.keys.verify(ctx, { name, ...dto });
  }

  @Post(':name/encrypt')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_USE)
  @ApiOperation({ summary: 'Encrypt a short plaintext (RSA-OAEP, RSA-OAEP-256)' })
  @ApiOkResponse({ description: 'the ciphertext and the version to decrypt it with', schema: bodyOf('KeyCiphertext') })
  async encrypt(@OpContext() ctx: OperationContext, @Param('name') name: string, @Body() dto: EncryptDto) {
    const r = await this.keys.encrypt(ctx, { name, ...dto });
    return { name: r.name, version: r.version, algorithm: r.algorithm, ciphertext: b64u(r.ciphertext) };
  }

  @Post(':name/decrypt')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_USE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'Decrypt with the key version that encrypted (give `version`)' })
  @ApiOkResponse({ description: 'the plaintext', schema: bodyOf('KeyPlaintext') })
  async decrypt(@OpContext() ctx: OperationContext, @Param('name') name: string, @Body() dto: DecryptDto) {
    const r = await this.keys.decrypt(ctx, { name, ...dto });
    return { name: r.name, version: r.version, algorithm: r.algorithm, plaintext: b64u(r.plaintext) };
  }

  @Post(':name/wrap-key')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_USE)
  @ApiOperation({ summary: 'Wrap (encrypt) a key, e.g. a data key of an envelope scheme' })
  @ApiOkResponse({ description: 'the wrapped key and the version to unwrap it with', schema: bodyOf('KeyWrapped') })
  async wrapKey(@OpContext() ctx: OperationContext, @Param('name') name: string, @Body() dto: WrapKeyDto) {
    const r = await this.keys.wrapKey(ctx, { name, ...dto });
    return { name: r.name, version: r.version, algorithm: r.algorithm, wrappedKey: b64u(r.wrappedKey) };
  }

  @Post(':name/unwrap-key')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_USE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'Unwrap a key wrapped by this key (give the wrapping `version`)' })
  @ApiOkResponse({ description: 'the unwrapped key', schema: bodyOf('KeyUnwrapped') })
  async unwrapKey(@OpContext() ctx: OperationContext, @Param('name') name: string, @Body() dto: UnwrapKeyDto) {
    const r = await this.keys.unwrapKey(ctx, { name, ...dto });
    return { name: r.name, version: r.version, algorithm: r.algorithm, key: b64u(r.key) };
  }
}

/** Soft-deleted keys: recover or purge (Key Vault's `deletedkeys`). */
@ApiTags('keys')
@ApiBearerAuth()
@ApiSecurity('api-key')
@Controller('v1/deleted-keys')
export class DeletedKeysController {
  constructor(private readonly keys: KeysService) {}

  @Post(':name/recover')
  @HttpCode(200)
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'Recover a soft-deleted key with every version' })
  @ApiOkResponse({ description: 'the recovered key', schema: bodyOf('Key') })
  recover(@OpContext() ctx: OperationContext, @Param('name') name: string) {
    return this.keys.recoverKey(ctx, name);
  }

  @Delete(':name')
  @HttpCode(204)
  @RequireScopes(Scope.KEYS_WRITE)
  @ApiOperation({ summary: 'Purge a soft-deleted key for good (refused when the vault has purge protection)' })
  @ApiNoContentResponse({ description: 'purged' })
  async purge(@OpContext() ctx: OperationContext, @Param('name') name: string): Promise<void> {
    await this.keys.purgeKey(ctx, name);
  }
}
