// A small typed flag parser for the tools: every flag declared with its kind, default and help;
// unknown flags and bad values are errors naming the flag and what is accepted.
/** 'multi': repeatable, every value kept in order (string[]). */
export type FlagKind = 'bool' | 'int' | 'float' | 'string' | 'list' | 'optional-string' | 'multi';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  default?: string | number | boolean | null;
  /** Accepted values for strings (closed sets). */
  choices?: readonly string[];
  min?: number;
  max?: number;
}

export type Parsed = Record<string, string | number | boolean | null | string[]>;

export function parseFlags(tool: string, argv: string[], spec: Record<string, FlagSpec>): { flags: Parsed; positional: string[] } {
  const flags: Parsed = {};
  for (const [k, s] of Object.entries(spec)) flags[k] = s.default ?? (s.kind === 'bool' ? false : s.kind === 'multi' ? [] : null);
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') { console.log(helpText(tool, spec)); process.exit(0); }
    if (!a.startsWith('--')) { positional.push(a); continue; }
    let [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    let negate = false;
    if (!(name in spec) && name.startsWith('no-') && spec[name.slice(3)]?.kind === 'bool') { name = name.slice(3); negate = true; }
    const s = spec[name];
    if (!s) throw new Error(`${tool}: unknown flag --${name} (see --help; flags: ${Object.keys(spec).map((k) => `--${k}`).join(' ')})`);
    if (s.kind === 'bool') { flags[name] = !negate; continue; }
    let v = inline;
    if (v === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        if (s.kind === 'optional-string') { flags[name] = ''; continue; }
        throw new Error(`${tool}: --${name} needs a value (${s.help})`);
      }
      v = next; i++;
    }
    if (s.kind === 'multi') (flags[name] as string[]).push(v);
    else flags[name] = convert(tool, name, s, v);
  }
  return { flags, positional };
}

function convert(tool: string, name: string, s: FlagSpec, v: string): string | number | string[] {
  if (s.kind === 'int' || s.kind === 'float') {
    const n = Number(v);
    if (!Number.isFinite(n) || (s.kind === 'int' && !Number.isInteger(n))) throw new Error(`${tool}: --${name} ${v}: expected ${s.kind === 'int' ? 'an integer' : 'a number'}`);
    if ((s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) throw new Error(`${tool}: --${name} ${v}: must be in [${s.min ?? '-inf'}, ${s.max ?? 'inf'}]`);
    return n;
  }
  if (s.kind === 'list') return v.split(',').filter((x) => x.length > 0);
  if (s.choices && !s.choices.includes(v)) throw new Error(`${tool}: --${name} ${v}: accepted values are ${s.choices.join(', ')}`);
  return v;
}

export function helpText(tool: string, spec: Record<string, FlagSpec>): string {
  const rows = Object.entries(spec).map(([k, s]) => {
    const def = s.default === undefined || s.default === null ? '' : ` (default: ${s.default})`;
    const ch = s.choices ? ` [${s.choices.join('|')}]` : '';
    const arg = s.kind === 'bool' ? '' : s.kind === 'optional-string' ? ' [VALUE]' : ' VALUE';
    return `  --${k}${arg}`.padEnd(30) + `${s.help}${ch}${def}`;
  });
  return `usage: tsx model/${tool}.ts [flags]\n${rows.join('\n')}`;
}
