/** The host's routes as its running OpenAPI document lists them, so routes added later are covered without a list here. */
export interface OpenApiDoc {
  paths: Record<
    string,
    Record<string, { parameters?: { name: string; in: string }[]; security?: unknown[]; requestBody?: { content?: Record<string, { schema?: { $ref?: string } }> } }>
  >;
  components?: { schemas?: Record<string, { properties?: Record<string, PropertySchema>; required?: string[] }> };
}

/** What the generator and the null oracle read of a body property. */
export interface PropertySchema {
  type?: string;
  nullable?: boolean;
  items?: { nullable?: boolean };
  additionalProperties?: unknown;
}

export interface Operation {
  method: string;
  /** OpenAPI path with `{param}` placeholders. */
  path: string;
  /** Names of the path parameters, in order. */
  pathParams: string[];
  query: string[];
  /** Documented body fields, if the operation takes a body. */
  bodyFields: string[];
  /** Their schemas, by name (whether null is documented, for the field or its items). */
  bodySchema: Record<string, PropertySchema>;
  /** Declares a security requirement (everything but health, metrics and docs). */
  secured: boolean;
}

export async function fetchOperations(baseUrl: string): Promise<Operation[]> {
  const res = await fetch(`${baseUrl}/docs/json`);
  if (res.status !== 200) throw new Error(`GET /docs/json: ${res.status}`);
  return listOperations((await res.json()) as OpenApiDoc);
}

export function listOperations(doc: OpenApiDoc): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const ref = op.requestBody?.content?.['application/json']?.schema?.$ref;
      const schema = ref ? doc.components?.schemas?.[ref.split('/').pop()!] : undefined;
      ops.push({
        method: method.toUpperCase(),
        path,
        pathParams: [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]),
        query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
        bodyFields: Object.keys(schema?.properties ?? {}),
        bodySchema: schema?.properties ?? {},
        secured: (op.security ?? []).length > 0,
      });
    }
  }
  return ops;
}

/** `path` with its placeholders replaced, in order, by `values`. */
export function fillPath(op: Operation, values: string[]): string {
  let path = op.path;
  op.pathParams.forEach((n, i) => (path = path.replace(`{${n}}`, values[i])));
  return path;
}

/**
 * The first documented body field of `body` holding a null the document does not allow — the field itself not
 * `nullable`, or an item of a list or value of a map whose items are not — as the host's rule reads the same
 * document; undefined when there is none.
 */
export function undocumentedNull(op: Operation, body: unknown): string | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  for (const [name, schema] of Object.entries(op.bodySchema)) {
    if (!Object.hasOwn(body, name)) continue;
    const v = (body as Record<string, unknown>)[name];
    if (v === null && schema.nullable !== true) return name;
    const list = schema.type === 'array' && Array.isArray(v) && schema.items?.nullable !== true;
    const map = typeof schema.additionalProperties === 'object' && (schema.additionalProperties as { nullable?: boolean } | null)?.nullable !== true && v !== null && typeof v === 'object' && !Array.isArray(v);
    if ((list || map) && Object.values(v as object).includes(null)) return `${name} (an item)`;
  }
  return undefined;
}
