import { describe, expect, it } from 'vitest';
import { missingKeys, translate } from './i18n';

describe('the app chrome in two languages', () => {
  it('has every Korean text in English too', () => {
    expect(missingKeys()).toEqual([]);
  });
  it('fills placeholders', () => {
    expect(translate('ko', 'more_n', { n: 2 })).toBe('+2개 더');
    expect(translate('en', 'more_n', { n: 2 })).toBe('+2 more');
    expect(translate('ko', 'removed_notice', { title: '우리 가족' })).toContain("'우리 가족' 가족에서");
  });
  it('has seven weekdays in each language', () => {
    expect(translate('ko', 'weekdays').split(',')).toHaveLength(7);
    expect(translate('en', 'weekdays').split(',')).toHaveLength(7);
  });
});
