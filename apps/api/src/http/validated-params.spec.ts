import 'reflect-metadata';
// eslint-disable-next-line no-restricted-imports -- the case the start-up check must catch
import { BadRequestException, Body as NestBody, Controller, Get, Post, Query as NestQuery } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { DECORATORS } from '@nestjs/swagger';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { IsBoolean, IsOptional } from 'class-validator';
import { assertValidatedInput, Body, CredentialIdParam, declaredQueryNames, Param, Query, unvalidatedInput } from './validated-params';

class ReadDto {
  @IsOptional()
  @IsBoolean()
  allowExpired?: boolean;
}

@Controller('ours')
class OursController {
  @Get(':id')
  read(@CredentialIdParam() _id: string, @Query() _q: ReadDto) {}

  @Post(':name')
  write(@Param('name') _name: string, @Body() _body: ReadDto, @Query('x') _x: string) {}

  /** Not a route: never checked. */
  helper(_body: unknown) {}
}

@Controller('nests')
class NestsController {
  @Post()
  write(@NestBody() _body: ReadDto) {}

  @Get()
  list(@NestQuery() _q: ReadDto) {}
}

/** The credential id as the host reads it from a request with these path parameters. */
function credentialIdOf(params: Record<string, string>): string {
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, OursController, 'read') as Record<string, { index: number; data: unknown; factory: (data: unknown, ctx: unknown) => string }>;
  const arg = Object.values(args).find((a) => a.index === 0)!;
  return arg.factory(arg.data, new ExecutionContextHost([{ params }, {}]));
}

describe('the host input parameters', () => {
  it('finds every body and query that skips the ValidationPipe, and refuses to start with one', () => {
    expect(unvalidatedInput([OursController])).toEqual([]);
    expect(unvalidatedInput([OursController, NestsController])).toEqual(['NestsController.write: body', 'NestsController.list: query']);
    expect(() => assertValidatedInput([NestsController])).toThrow(/Route input not validated[^]*NestsController\.write: body/);
    expect(() => assertValidatedInput([OursController])).not.toThrow();
  });

  it('takes a credential id in any case as stored (lower case), and refuses anything else without repeating it', () => {
    const id = '0b7c5a34-1f2e-4d3c-9a8b-7c6d5e4f3a2b';
    expect(credentialIdOf({ id })).toBe(id);
    expect(credentialIdOf({ id: id.toUpperCase() })).toBe(id);
    for (const bad of ['sk_live_0123456789abcdef', `${id} `, '0b7c5a34-1f2e-1d3c-9a8b-7c6d5e4f3a2b', '']) {
      const e = (() => {
        try {
          credentialIdOf({ id: bad });
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(BadRequestException);
      expect((e as BadRequestException).message).toBe('the id in the path must be a credential id (a UUID, as GET /v1/credentials lists them)');
    }
  });

  it("collects the query names the routes take: a DTO's fields and named parameters", () => {
    expect([...declaredQueryNames([OursController])].sort()).toEqual(['allowExpired', 'x']);
  });

  it('documents the credential id as a path parameter in OpenAPI', () => {
    expect(Reflect.getMetadata(DECORATORS.API_PARAMETERS, OursController.prototype.read)).toEqual([
      expect.objectContaining({ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }),
    ]);
  });
});
