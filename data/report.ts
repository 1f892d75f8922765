// Counted issues for bad input: every skipped / clamped / dropped item increments a named
// counter and keeps the first few messages as examples; the summary prints once per load.

export interface IssueReport {
  /** What was loaded (annotation file, loader name). */
  source: string;
  counts: Record<string, number>;
  /** First `maxExamples` messages per kind, each naming file / ids / values. */
  examples: Record<string, string[]>;
}

export class IssueCounter {
  readonly report: IssueReport;
  constructor(source: string, private readonly maxExamples = 3) {
    this.report = { source, counts: {}, examples: {} };
  }
  add(kind: string, message: string): void {
    const r = this.report;
    r.counts[kind] = (r.counts[kind] ?? 0) + 1;
    const ex = (r.examples[kind] ??= []);
    if (ex.length < this.maxExamples) ex.push(message);
  }
  total(): number {
    return Object.values(this.report.counts).reduce((a, b) => a + b, 0);
  }
}

/** One multi-line summary; empty string when nothing was counted. */
export function formatIssueReport(r: IssueReport): string {
  const kinds = Object.keys(r.counts).sort();
  if (kinds.length === 0) return '';
  const lines = [`${r.source}: ${kinds.map((k) => `${r.counts[k]} ${k}`).join(', ')}`];
  for (const k of kinds) for (const m of r.examples[k] ?? []) lines.push(`  [${k}] ${m}`);
  return lines.join('\n');
}
