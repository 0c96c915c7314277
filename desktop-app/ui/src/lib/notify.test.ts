import { describe, expect, it } from 'vitest';
import { NOTIFICATION_BODY_MAX, notificationBody } from './notify';

describe('desktop notification bodies', () => {
  it('show markup a family member wrote as text, never as a link', () => {
    const title = '<a href="https://evil.example/login">도란도란: 다시 로그인</a>';
    const body = notificationBody(`엄마 added ${title}`);
    expect(body).not.toContain('<a');
    expect(body).not.toMatch(/[<>&]/);
    expect(body).toBe('엄마 added ＜a href="https://evil.example/login"＞도란도란: 다시 로그인＜/a＞');
    expect(notificationBody("<img src='x'> & more")).toBe("＜img src='x'＞ ＆ more");
  });

  it('drop control and direction-override characters', () => {
    expect(notificationBody('아빠\u202e가 좋아해요\u0007\u001b[31m')).toBe('아빠가 좋아해요[31m');
  });

  it('are cut short, by characters, not bytes', () => {
    const long = '가'.repeat(10_000);
    const body = notificationBody(long);
    expect(Array.from(body)).toHaveLength(NOTIFICATION_BODY_MAX);
    expect(body.endsWith('…')).toBe(true);
    expect(notificationBody('짧은 글')).toBe('짧은 글');
  });
});
