import { describe, expect, it, vi } from 'vitest';
import { dispatch, onBlob, onFamilyChange } from './events';

describe('screens reload on the events that concern them', () => {
  it('reloads for its family and parts only', () => {
    const reload = vi.fn();
    const stop = onFamilyChange('fam', ['missions'], reload);
    dispatch({ type: 'family_changed', family: 'other', parts: ['missions'], local: false });
    dispatch({ type: 'family_changed', family: 'fam', parts: ['gallery'], local: false });
    expect(reload).not.toHaveBeenCalled();
    dispatch({ type: 'family_changed', family: 'fam', parts: ['missions'], local: false });
    dispatch({ type: 'members_changed', family: 'fam' });
    dispatch({ type: 'resync' });
    expect(reload).toHaveBeenCalledTimes(3);
    stop();
    dispatch({ type: 'resync' });
    expect(reload).toHaveBeenCalledTimes(3);
  });

  it('hears a blob arrive', () => {
    const arrived = vi.fn();
    const stop = onBlob('abc', arrived);
    dispatch({ type: 'blob_arrived', hash: 'def' });
    dispatch({ type: 'blob_arrived', hash: 'abc' });
    stop();
    expect(arrived).toHaveBeenCalledTimes(1);
  });
});
