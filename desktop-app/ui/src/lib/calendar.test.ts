import { describe, expect, it } from 'vitest';
import { dayTitle, monthGrid, monthTitle, shiftMonth, weekday } from './calendar';
import type { CalendarMonth, MonthEvent } from './types';

function event(id: string, start: string, end: string, lane: number): MonthEvent {
  return {
    id,
    event: {
      title: id,
      notes: '',
      start,
      end,
      start_time: null,
      end_time: null,
      color: '#CE5F5F',
      owner: 'u',
      created_at: 0,
      updated_at: 0,
    },
    owner_name: '엄마',
    first_in_month: start < '2026-12-01' ? '2026-12-01' : start,
    last_in_month: end > '2026-12-31' ? '2026-12-31' : end,
    continues_before: start < '2026-12-01',
    continues_after: end > '2026-12-31',
    lane,
  };
}

/** December 2026 (starts on a Tuesday) with the given events on their lanes. */
function december(events: MonthEvent[]): CalendarMonth {
  const days = Array.from({ length: 31 }, (_, i) => {
    const date = `2026-12-${String(i + 1).padStart(2, '0')}`;
    const on = events.filter((e) => e.first_in_month <= date && date <= e.last_in_month);
    const slots: (string | null)[] = [null, null, null];
    for (const e of on) if (e.lane < 3) slots[e.lane] = e.id;
    return { date, events: on.map((e) => e.id), slots, more: Math.max(0, on.length - 3) };
  });
  return { month: '2026-12', events, days };
}

describe('the month grid', () => {
  it('starts on the right weekday and fills whole weeks', () => {
    const weeks = monthGrid(december([]));
    expect(weekday('2026-12-01')).toBe(2);
    expect(weeks).toHaveLength(5);
    expect(weeks[0].cells.slice(0, 2).every((c) => c.date === null)).toBe(true);
    expect(weeks[0].cells[2].date).toBe('2026-12-01');
    expect(weeks.flatMap((w) => w.cells).filter((c) => c.date).length).toBe(31);
  });

  it('draws a multi-day event as one bar per week, open where it continues', () => {
    // Fri 4th to Tue 8th: Fri–Sat in the first week, Sun–Tue in the second.
    const weeks = monthGrid(december([event('trip', '2026-12-04', '2026-12-08', 1)]));
    const [first] = weeks[0].bars;
    expect(first).toMatchObject({ column: 5, span: 2, lane: 1, openStart: false, openEnd: true });
    const [second] = weeks[1].bars;
    expect(second).toMatchObject({ column: 0, span: 3, lane: 1, openStart: true, openEnd: false });
  });

  it('keeps an event from the month before open on the left', () => {
    const weeks = monthGrid(december([event('camp', '2026-11-29', '2026-12-02', 0)]));
    expect(weeks[0].bars[0]).toMatchObject({ column: 2, span: 2, openStart: true, openEnd: false });
  });

  it('puts two events on their own lanes', () => {
    const weeks = monthGrid(
      december([event('a', '2026-12-14', '2026-12-16', 0), event('b', '2026-12-15', '2026-12-15', 1)]),
    );
    const bars = weeks[2].bars.map((b) => [b.event.id, b.lane, b.column, b.span]);
    expect(bars).toEqual([
      ['a', 0, 1, 3],
      ['b', 1, 2, 1],
    ]);
  });
});

describe('months and days', () => {
  it('steps across years', () => {
    expect(shiftMonth('2026-12', 1)).toBe('2027-01');
    expect(shiftMonth('2026-01', -1)).toBe('2025-12');
  });
  it('names them in the user language', () => {
    expect(monthTitle('2026-12', 'ko')).toBe('2026년 12월');
    expect(monthTitle('2026-12', 'en')).toBe('December 2026');
    expect(dayTitle('2026-12-03', 'ko')).toBe('12월 3일');
    expect(dayTitle('2026-12-03', 'en')).toBe('Dec 3');
  });
});
