import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cloneJson, jsonEqual, mergePatch, type JsonValue } from '@possync/client';

describe('mergePatch (RFC 7386, as src/model/merge_patch.cpp)', () => {
  // RFC 7386, Appendix A: every example.
  const cases: Array<[JsonValue, JsonValue, JsonValue]> = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, expected] of cases) {
    it(`${JSON.stringify(target)} + ${JSON.stringify(patch)}`, () => {
      assert.deepEqual(mergePatch(target, patch), expected);
    });
  }

  it('does not modify the target or share the patch', () => {
    const target = { a: { b: 1 }, c: [1, 2] };
    const before = cloneJson(target);
    const patch = { a: { d: [{ x: 1 }] }, c: null };
    const result = mergePatch(target, patch) as { a: { d: Array<{ x: number }> } };
    assert.deepEqual(target, before);
    assert.deepEqual(result, { a: { b: 1, d: [{ x: 1 }] } });
    result.a.d[0]!.x = 2;
    assert.equal(patch.a.d[0]!.x, 1);
  });

  it('a missing target starts empty; nested nulls in a new object are dropped', () => {
    assert.deepEqual(mergePatch(undefined, { a: null, b: { c: null, d: 1 } }), { b: { d: 1 } });
  });

  it('keeps a member named __proto__ as data', () => {
    const patch = JSON.parse('{"__proto__":{"x":1},"y":2}') as JsonValue;
    const result = mergePatch({}, patch) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(result), Object.prototype);
    assert.deepEqual(Object.keys(result).sort(), ['__proto__', 'y']);
    assert.equal(({} as Record<string, unknown>).x, undefined);
    assert.equal(JSON.stringify(result), '{"__proto__":{"x":1},"y":2}');
  });
});

describe('jsonEqual', () => {
  it('ignores member order, not array order', () => {
    assert.ok(jsonEqual({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 }));
    assert.ok(!jsonEqual({ a: [1, 2] }, { a: [2, 1] }));
    assert.ok(!jsonEqual({ a: 1 }, { a: 1, b: null }));
    assert.ok(!jsonEqual({ a: null }, { b: null }));
    assert.ok(!jsonEqual([], {}));
    assert.ok(jsonEqual(25.5, JSON.parse('2.55E1') as number));
  });
});
