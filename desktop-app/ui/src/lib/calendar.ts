// Laying out the facade's month (CalendarMonth) as a grid: weeks of seven cells, and
// in each week the bars of the events on each lane. The facade decides the lanes and
// the "+N more"; this only turns runs of days into bars.

import type { CalendarDay, CalendarMonth, MonthEvent } from './types';

export interface Cell {
  /** `YYYY-MM-DD`, or null for a day of another month. */
  date: string | null;
  day: CalendarDay | null;
}

export interface Bar {
  event: MonthEvent;
  lane: number;
  /** First column (0 = Sunday) and how many columns it spans in this week. */
  column: number;
  span: number;
  /** Whether the bar continues from the week before / into the next. */
  openStart: boolean;
  openEnd: boolean;
}

export interface Week {
  cells: Cell[];
  bars: Bar[];
}

/** Day of the week of a `YYYY-MM-DD` date, 0 = Sunday. */
export function weekday(date: string): number {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d)).getUTCDay();
}

/** The weeks of `month`, Sunday first, with each week's bars from the days' slots. */
export function monthGrid(month: CalendarMonth): Week[] {
  const byId = new Map(month.events.map((e) => [e.id, e]));
  const cells: Cell[] = [];
  const lead = month.days.length ? weekday(month.days[0].date) : 0;
  for (let i = 0; i < lead; i++) cells.push({ date: null, day: null });
  for (const day of month.days) cells.push({ date: day.date, day });
  while (cells.length % 7 !== 0) cells.push({ date: null, day: null });

  const weeks: Week[] = [];
  for (let w = 0; w < cells.length / 7; w++) {
    const week = cells.slice(w * 7, w * 7 + 7);
    const bars: Bar[] = [];
    const lanes = Math.max(0, ...week.map((c) => c.day?.slots.length ?? 0));
    for (let lane = 0; lane < lanes; lane++) {
      let col = 0;
      while (col < 7) {
        const id = week[col].day?.slots[lane] ?? null;
        if (!id) {
          col++;
          continue;
        }
        let end = col;
        while (end + 1 < 7 && week[end + 1].day?.slots[lane] === id) end++;
        const event = byId.get(id);
        if (event) {
          const first = week[col].date!;
          const last = week[end].date!;
          bars.push({
            event,
            lane,
            column: col,
            span: end - col + 1,
            openStart: first > event.event.start,
            openEnd: last < event.event.end,
          });
        }
        col = end + 1;
      }
    }
    weeks.push({ cells: week, bars });
  }
  return weeks;
}

/** `YYYY-MM` of the month before or after `month`. */
export function shiftMonth(month: string, by: number): string {
  const [y, m] = month.split('-').map(Number);
  const d = new Date(Date.UTC(y, m - 1 + by, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The month's title in the user's language ("2026년 12월", "December 2026"). */
export function monthTitle(month: string, lang: 'ko' | 'en'): string {
  const [y, m] = month.split('-').map(Number);
  if (lang === 'ko') return `${y}년 ${m}월`;
  return new Date(Date.UTC(y, m - 1, 1)).toLocaleString('en', {
    month: 'long',
    year: 'numeric',
    timeZone: 'UTC',
  });
}

/** "12월 3일" / "Dec 3" for a `YYYY-MM-DD` date. */
export function dayTitle(date: string, lang: 'ko' | 'en'): string {
  const [y, m, d] = date.split('-').map(Number);
  if (lang === 'ko') return `${m}월 ${d}일`;
  return new Date(Date.UTC(y, m - 1, d)).toLocaleString('en', {
    month: 'short',
    day: 'numeric',
    timeZone: 'UTC',
  });
}

/** Today's date `YYYY-MM-DD` on this computer. */
export function todayLocal(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}`;
}
