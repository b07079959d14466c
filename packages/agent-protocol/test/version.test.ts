import { describe, expect, it } from 'vitest';
import { AGENT_PROTOCOL_VERSION } from '../src/index.js';

describe('agent protocol', () => {
  it('has a positive integer version', () => {
    expect(Number.isInteger(AGENT_PROTOCOL_VERSION) && AGENT_PROTOCOL_VERSION > 0).toBe(true);
  });
});
