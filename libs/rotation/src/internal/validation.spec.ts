import { thrown } from '@app/testing';
import type { OperationContext } from '@app/common';
import { assertContext } from './validation';

describe('assertContext', () => {
  // `policies:list --tenant <200 characters>` (or one with an ESC in it) said the context had no tenant id.
  it('says a tenant id that is given but not an identifier is not one, naming the rule, not that it is missing', () => {
    for (const tenantId of ['t'.repeat(129), 't\u001b', '../t']) {
      expect(thrown(() => assertContext({ tenantId, actor: { id: 'ops' } } as OperationContext))).toMatchObject({
        field: 'tenantId',
        message: 'tenantId must be 1-128 characters of A-Z a-z 0-9 . _ : @ -',
      });
    }
    expect(thrown(() => assertContext({ tenantId: 'acme' } as OperationContext))).toMatchObject({ field: 'context', message: expect.stringMatching(/required/) });
    expect(thrown(() => assertContext(undefined as unknown as OperationContext))).toMatchObject({ field: 'context' });
    expect(() => assertContext({ tenantId: 'acme', actor: { id: 'ops' } } as OperationContext)).not.toThrow();
  });
});
