// Which gateway a guardrail rule speaks to: a rule applies to a protocol only when every condition
// it sets speaks of that protocol.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Guardrail, guardrailAppliesTo } from './index.ts';

const PROTOCOLS = ['postgres', 'ssh', 'http', 'kubernetes'] as const;
const applies = (match: Guardrail['match']) => PROTOCOLS.filter((p) => guardrailAppliesTo(match, p));

test('each condition sends its rule to the gateways that understand it', () => {
  const cases: [Guardrail['match'], string[]][] = [
    [{ sqlClasses: ['drop'] }, ['postgres']],
    [{ sqlPattern: 'DROP' }, ['postgres']],
    [{ commandPattern: 'rm -rf' }, ['ssh']],
    [{ pathPattern: '^/etc/' }, ['ssh', 'http', 'kubernetes']],
    [{ httpMethods: ['DELETE'], pathPattern: '^/api/' }, ['http', 'kubernetes']],
    [{ kubernetes: { verbs: ['delete'] } }, ['kubernetes']],
    [{ httpMethods: ['POST'], jsonBody: [{ field: 'a', pattern: 'x' }] }, ['http', 'kubernetes']],
    // Conditions of two protocols: no gateway sees all of them, so none half-applies the rule.
    [{ sqlClasses: ['drop'], commandPattern: 'rm' }, []],
    [{ commandPattern: 'rm', httpMethods: ['GET'] }, []],
    [{}, [...PROTOCOLS]],
  ];
  for (const [match, expected] of cases) assert.deepEqual(applies(match), expected, JSON.stringify(match));
});
