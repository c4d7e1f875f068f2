import { ArgumentMetadata, BadRequestException } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsArray, IsObject, IsOptional, IsString, Length, MaxLength, ValidateIf } from 'class-validator';
import { hostValidationPipe, parseDateTime, QueryBoolean, QueryInt } from './strict-input';

class OptionalQuery {
  @IsOptional()
  @QueryBoolean()
  allowExpired?: boolean;
}

/** As the audit query: single-valued text and integer parameters, and a list a repeated parameter adds to. */
class FilterQuery {
  @IsOptional()
  @IsString()
  @MaxLength(256)
  resource?: string;

  @IsOptional()
  @QueryInt(1, 500)
  limit?: number;

  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.split(',') : value))
  @IsArray()
  @IsString({ each: true })
  action?: string[];
}

class RequiredQuery {
  @IsString()
  name: string;
}

class StoreBody {
  @IsString()
  @Length(1, 100)
  value: string;

  @IsOptional()
  @IsString()
  note?: string;
}

/** As the DTOs: an optional field, a documented nullable one (null clears it), a required one, and a subclass. */
class PatchBody {
  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  note?: string;

  @ApiPropertyOptional({ type: String, nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsString()
  label?: string | null;
}

/** A list and a map (as tags), and a list whose document lets its items be null. */
class ListsBody {
  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  emails?: string[];

  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsObject()
  tags?: Record<string, string>;

  @ApiPropertyOptional({ type: 'array', isArray: true, items: { type: 'string', nullable: true } })
  @IsOptional()
  @IsArray()
  holes?: (string | null)[];
}

class NamedPatchBody extends PatchBody {
  @ApiProperty()
  @IsString()
  name: string;
}

/** The host's ValidationPipe, including its shortcut for an empty query string. */
describe('hostValidationPipe', () => {
  const pipe = hostValidationPipe();
  const query = (metatype: ArgumentMetadata['metatype']): ArgumentMetadata => ({ type: 'query', metatype, data: undefined });

  it('answers an empty query of an all-optional DTO with an instance of it', async () => {
    const out = await pipe.transform({}, query(OptionalQuery));
    expect(out).toBeInstanceOf(OptionalQuery);
    expect(out).toEqual({});
  });

  it('still refuses an empty query when the DTO has a required field', async () => {
    await expect(pipe.transform({}, query(RequiredQuery))).rejects.toBeInstanceOf(BadRequestException);
    // Twice: the verdict on `{}` is remembered per DTO class, and stays a refusal.
    await expect(pipe.transform({}, query(RequiredQuery))).rejects.toBeInstanceOf(BadRequestException);
  });

  it('validates and transforms any non-empty query in full', async () => {
    expect(await pipe.transform({ allowExpired: 'true' }, query(OptionalQuery))).toEqual({ allowExpired: true });
    await expect(pipe.transform({ allowExpired: 'yes' }, query(OptionalQuery))).rejects.toBeInstanceOf(BadRequestException);
    await expect(pipe.transform({ other: '1' }, query(OptionalQuery))).rejects.toBeInstanceOf(BadRequestException);
  });

  // `?resource=a&resource=b` is parsed as an array: it was answered with every rule a string fails ('resource must be
  // a string', 'resource must be shorter than…'), which says nothing of what was wrong.
  it('answers a single-valued query parameter given twice with one message naming it; a list parameter may repeat', async () => {
    const refusal = (q: Record<string, unknown>) =>
      pipe.transform(q, query(FilterQuery)).then(
        () => undefined,
        (e: BadRequestException) => (e.getResponse() as { message: string[] }).message,
      );
    expect(await refusal({ resource: ['a', 'b'] })).toEqual(['resource may be given once']);
    expect(await refusal({ limit: ['1', '2'], resource: 'a' })).toEqual(['limit may be given once']);
    expect(await refusal({ resource: ['a', 'b'], limit: ['1', '2'] })).toEqual(['resource may be given once', 'limit may be given once']);
    expect(await pipe.transform({ action: ['read', 'rotate'], resource: 'a' }, query(FilterQuery))).toEqual({ action: ['read', 'rotate'], resource: 'a' });
    // An undeclared parameter, repeated, is still only "not accepted" (its name is never repeated).
    expect(await refusal({ secretish: ['a', 'b'] })).toEqual(['the query has a parameter that is not accepted']);
  });

  it('does not take the shortcut for an empty body', async () => {
    await expect(pipe.transform({}, { type: 'body', metatype: RequiredQuery, data: undefined })).rejects.toBeInstanceOf(BadRequestException);
  });

  it('answers a required field left out with "<field> is required", not every rule a value would have to pass', async () => {
    const refusal = (body: unknown) =>
      pipe.transform(body, { type: 'body', metatype: StoreBody, data: undefined }).then(
        () => undefined,
        (e: BadRequestException) => (e.getResponse() as { message: string[] }).message,
      );
    expect(await refusal({ note: 'n' })).toEqual(['value is required']);
    // A value sent but wrong keeps its rules' messages (null is sent, not left out).
    expect(await refusal({ value: '' })).toEqual(['value must be longer than or equal to 1 characters']);
    expect(await refusal({ value: null })).toEqual(['value must not be null']);
  });

  it('takes an explicit null only in a field documented nullable; elsewhere 400 naming the field, inherited fields too', async () => {
    const body = (metatype: ArgumentMetadata['metatype']) => ({ type: 'body' as const, metatype, data: undefined });
    const refusal = (value: unknown, metatype: ArgumentMetadata['metatype'] = PatchBody) =>
      pipe.transform(value, body(metatype)).then(
        () => undefined,
        (e: BadRequestException) => (e.getResponse() as { message: string[] }).message,
      );
    expect(await refusal({ note: null })).toEqual(['note must not be null (leave it out instead)']);
    expect(await pipe.transform({ label: null }, body(PatchBody))).toEqual({ label: null });
    expect(await refusal({ name: null, note: null, label: null }, NamedPatchBody)).toEqual(['name must not be null', 'note must not be null (leave it out instead)']);
    expect(await pipe.transform({ name: 'n', label: null }, body(NamedPatchBody))).toEqual({ name: 'n', label: null });
    // An undeclared field is refused unnamed, null or not.
    expect(await refusal({ secretish: null })).toEqual(['the body has a property that is not accepted']);
    // One level down: a null item of a list or value of a map is named by position (never by its key), unless its items are nullable.
    expect(await refusal({ emails: ['a@example.com', null], tags: { env: null } }, ListsBody)).toEqual(['emails #2 must not be null', 'tags #1 must not be null']);
    expect(await pipe.transform({ emails: [], tags: { env: 'prod' }, holes: ['a', null] }, body(ListsBody))).toEqual({ emails: [], tags: { env: 'prod' }, holes: ['a', null] });
  });
});


describe('parseDateTime', () => {
  it('parses years 0000–0099 as themselves (Date.UTC would take 01 for 1901), still checking the fields are real', () => {
    expect(parseDateTime('0001-01-01T00:00:00Z').toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(parseDateTime('0099-12-31T23:59:59.5+01:00').toISOString()).toBe('0099-12-31T22:59:59.500Z');
    expect(parseDateTime('0000-02-29T00:00:00Z').toISOString()).toBe('0000-02-29T00:00:00.000Z'); // year 0 is a leap year
    expect(parseDateTime('0001-02-29T00:00:00Z').getTime()).toBeNaN();
    expect(parseDateTime('2030-02-30T00:00:00Z').getTime()).toBeNaN();
    expect(parseDateTime('2030-01-31T12:00:00Z').toISOString()).toBe('2030-01-31T12:00:00.000Z');
  });
});
