// A pickle interpreter that only builds data. It understands the opcodes torch.save emits
// (protocols 2-5, plus the simple protocol-0/1 forms), never imports or calls anything: a GLOBAL is
// resolved by the caller's whitelist (resolveGlobal), which either returns a PyCallable (a
// TypeScript function that builds plain data) or throws a WeightsFormatError naming the global.
// Every length is checked against the remaining bytes before anything is allocated.
import { WeightsFormatError } from './errors.ts';

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export class PyDict {
  readonly map = new Map<PyValue, PyValue>();
  /** State set by BUILD on a dict (e.g. an OrderedDict's `_metadata`); kept, not interpreted. */
  attrs: PyValue = null;
}
export class PySet {
  constructor(readonly items: PyValue[], readonly frozen: boolean) {}
}
/** A whitelisted global: calling it runs TypeScript that only builds data. */
export class PyCallable {
  constructor(
    readonly qualname: string,
    readonly call: (args: PyValue[], opOffset: number) => PyValue,
  ) {}
}
/** A whitelisted non-callable global value (e.g. torch.float32). */
export class PyConst {
  constructor(readonly qualname: string) {}
}
/** Anything the caller's callables or persistent_load return (storages, tensors). */
export interface PyOpaque {
  readonly pyKind: string;
}
export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | PyDict | PySet | PyCallable | PyConst | PyOpaque;

export interface UnpickleOptions {
  file: string;
  resolveGlobal(module: string, name: string, opOffset: number): PyCallable | PyConst;
  persistentLoad?(pid: PyValue, opOffset: number): PyValue;
}

const MARK_OBJ = Symbol('mark');
type StackItem = PyValue | typeof MARK_OBJ;

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Runs one pickle starting at `start`; returns its value and the offset just past STOP. */
export function unpickle(buf: Uint8Array, start: number, opts: UnpickleOptions): { value: PyValue; end: number } {
  const file = opts.file;
  const n = buf.byteLength;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = start;
  let op = start;
  const stack: StackItem[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();

  const fail = (what: string, at = op): never => {
    throw new WeightsFormatError(file, at, `pickle: ${what}`);
  };
  const need = (k: number, what: string): void => {
    if (k < 0 || p + k > n) fail(`${what}: needs ${k} bytes, ${n - p} left`);
  };
  const u8 = (): number => (need(1, 'u8'), buf[p++]);
  const u16 = (): number => (need(2, 'u16'), (p += 2), dv.getUint16(p - 2, true));
  const u32 = (): number => (need(4, 'u32'), (p += 4), dv.getUint32(p - 4, true));
  const i32 = (): number => (need(4, 'i32'), (p += 4), dv.getInt32(p - 4, true));
  const u64 = (): number => {
    need(8, 'u64');
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(n)) fail(`length ${v} exceeds the file size ${n}`);
    return Number(v);
  };
  const bytes = (k: number, what: string): Uint8Array => {
    need(k, what);
    p += k;
    return buf.subarray(p - k, p);
  };
  const utf8 = (k: number, what: string): string => {
    const b = bytes(k, what);
    try {
      return textDecoder.decode(b);
    } catch {
      return fail(`${what}: invalid UTF-8`);
    }
  };
  const line = (what: string): string => {
    const e = buf.indexOf(0x0a, p);
    if (e < 0) fail(`${what}: no newline before end of file`);
    const s = utf8(e - p, what);
    p = e + 1;
    return s;
  };
  const pop = (): PyValue => {
    const base = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= base) fail('stack underflow');
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    const base = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= base) fail('stack underflow');
    return stack[stack.length - 1] as PyValue;
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the stack');
    return stack.splice(m!) as PyValue[];
  };
  const memoGet = (i: number): PyValue => {
    if (!memo.has(i)) fail(`memo key ${i} was never stored`);
    return memo.get(i)!;
  };
  const memoPut = (i: number): void => {
    memo.set(i, top());
  };
  const signedLE = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const asDict = (v: PyValue, what: string): PyDict => (v instanceof PyDict ? v : fail(`${what} on a ${typeName(v)}, not a dict`));
  const setItems = (d: PyDict, items: PyValue[]): void => {
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) d.map.set(hashable(items[i], fail), items[i + 1]);
  };
  const call = (f: PyValue, args: PyValue, what: string): PyValue => {
    if (!(f instanceof PyCallable)) fail(`${what} on a ${typeName(f)}, not a whitelisted callable`);
    if (!(args instanceof PyTuple)) fail(`${what} ${(f as PyCallable).qualname}: arguments are a ${typeName(args)}, not a tuple`);
    return (f as PyCallable).call((args as PyTuple).items, op);
  };

  for (;;) {
    op = p;
    if (p >= n) fail('ran off the end of the data without STOP');
    const code = buf[p++];
    switch (code) {
      case 0x80: {
        const v = u8();
        if (v > 5) fail(`unsupported protocol ${v}`);
        break;
      }
      case 0x95: // FRAME: a length hint only
        u64();
        break;
      case 0x2e: {
        // STOP
        if (marks.length) fail('STOP with an open MARK');
        if (stack.length !== 1) fail(`STOP with ${stack.length} items on the stack (expected 1)`);
        return { value: stack[0] as PyValue, end: p };
      }
      case 0x28:
        marks.push(stack.length);
        break;
      case 0x29:
        stack.push(new PyTuple([]));
        break;
      case 0x5d:
        stack.push([]);
        break;
      case 0x7d:
        stack.push(new PyDict());
        break;
      case 0x8f:
        stack.push(new PySet([], false));
        break;
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4a:
        stack.push(i32());
        break;
      case 0x4b:
        stack.push(u8());
        break;
      case 0x4d:
        stack.push(u16());
        break;
      case 0x8a:
        stack.push(signedLE(bytes(u8(), 'LONG1')));
        break;
      case 0x8b: {
        const k = i32();
        if (k < 0 || k > 8192) fail(`LONG4 of ${k} bytes (limit 8192)`);
        stack.push(signedLE(bytes(k, 'LONG4')));
        break;
      }
      case 0x47:
        need(8, 'BINFLOAT');
        stack.push(dv.getFloat64(p, false));
        p += 8;
        break;
      case 0x49: {
        // INT (text): "00"/"01" are False/True in protocol 0
        const s = line('INT');
        if (s === '00' || s === '01') stack.push(s === '01');
        else if (/^[+-]?\d{1,15}$/.test(s)) stack.push(Number(s));
        else fail(`INT ${JSON.stringify(s.slice(0, 40))} is not a small decimal integer`);
        break;
      }
      case 0x4c: {
        const s = line('LONG').replace(/L$/, '');
        if (!/^[+-]?\d{1,4000}$/.test(s)) fail('LONG is not a decimal integer');
        const v = BigInt(s);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x46: {
        const s = line('FLOAT');
        const v = Number(s);
        if (s.trim() === '' || (Number.isNaN(v) && !/nan/i.test(s))) fail('FLOAT is not a number');
        stack.push(v);
        break;
      }
      case 0x58:
        stack.push(utf8(u32(), 'BINUNICODE'));
        break;
      case 0x8c:
        stack.push(utf8(u8(), 'SHORT_BINUNICODE'));
        break;
      case 0x8d:
        stack.push(utf8(u64(), 'BINUNICODE8'));
        break;
      case 0x54: {
        // BINSTRING / SHORT_BINSTRING: Python 2 str; torch.load decodes them as UTF-8
        const k = i32();
        stack.push(utf8(k, 'BINSTRING'));
        break;
      }
      case 0x55:
        stack.push(utf8(u8(), 'SHORT_BINSTRING'));
        break;
      case 0x43:
        stack.push(bytes(u8(), 'SHORT_BINBYTES').slice());
        break;
      case 0x42:
        stack.push(bytes(u32(), 'BINBYTES').slice());
        break;
      case 0x8e:
        stack.push(bytes(u64(), 'BINBYTES8').slice());
        break;
      case 0x96:
        stack.push(bytes(u64(), 'BYTEARRAY8').slice());
        break;
      case 0x74:
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85:
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x6c:
        stack.push(popMark());
        break;
      case 0x64: {
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: {
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail(`APPEND on a ${typeName(l)}, not a list`);
        (l as PyValue[]).push(v);
        break;
      }
      case 0x65: {
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail(`APPENDS on a ${typeName(l)}, not a list`);
        for (const v of items) (l as PyValue[]).push(v);
        break;
      }
      case 0x73: {
        const v = pop();
        const k = pop();
        asDict(top(), 'SETITEM').map.set(hashable(k, fail), v);
        break;
      }
      case 0x75: {
        const items = popMark();
        setItems(asDict(top(), 'SETITEMS'), items);
        break;
      }
      case 0x90: {
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet) || s.frozen) fail(`ADDITEMS on a ${typeName(s)}, not a set`);
        for (const v of items) (s as PySet).items.push(v);
        break;
      }
      case 0x91:
        stack.push(new PySet(popMark(), true));
        break;
      case 0x71:
        memoPut(u8());
        break;
      case 0x72:
        memoPut(u32());
        break;
      case 0x94:
        memoPut(memo.size);
        break;
      case 0x70: {
        const s = line('PUT');
        if (!/^\d{1,9}$/.test(s)) fail('PUT index is not a small integer');
        memoPut(Number(s));
        break;
      }
      case 0x68:
        stack.push(memoGet(u8()));
        break;
      case 0x6a:
        stack.push(memoGet(u32()));
        break;
      case 0x67: {
        const s = line('GET');
        if (!/^\d{1,9}$/.test(s)) fail('GET index is not a small integer');
        stack.push(memoGet(Number(s)));
        break;
      }
      case 0x63: {
        const module = line('GLOBAL module');
        const name = line('GLOBAL name');
        stack.push(opts.resolveGlobal(module, name, op));
        break;
      }
      case 0x93: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(opts.resolveGlobal(module as string, name as string, op));
        break;
      }
      case 0x52: {
        const args = pop();
        const f = pop();
        stack.push(call(f, args, 'REDUCE'));
        break;
      }
      case 0x81: {
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, 'NEWOBJ'));
        break;
      }
      case 0x92: {
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.map.size) fail('NEWOBJ_EX with keyword arguments');
        stack.push(call(cls, args, 'NEWOBJ_EX'));
        break;
      }
      case 0x62: {
        const state = pop();
        const obj = top();
        // Only dicts take state (OrderedDict._metadata); tensors' python attributes are ignored.
        if (obj instanceof PyDict) obj.attrs = state;
        else if (!isOpaque(obj)) fail(`BUILD on a ${typeName(obj)}`);
        break;
      }
      case 0x51:
      case 0x50: {
        const pid = code === 0x51 ? pop() : line('PERSID');
        if (!opts.persistentLoad) fail('persistent id in a pickle that allows none');
        stack.push(opts.persistentLoad!(pid, op));
        break;
      }
      case 0x30:
        if (stack.length > 0 && marks.length && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31:
        popMark();
        break;
      case 0x32:
        stack.push(top());
        break;
      default:
        fail(`opcode 0x${code.toString(16).padStart(2, '0')} ${OPCODE_NAMES[code] ?? '(unknown)'} is not supported (torch.save does not emit it)`);
    }
  }
}

const OPCODE_NAMES: Record<number, string> = {
  0x53: 'STRING', 0x56: 'UNICODE', 0x69: 'INST', 0x6f: 'OBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

function isOpaque(v: PyValue): v is PyOpaque {
  return typeof v === 'object' && v !== null && 'pyKind' in v;
}

export function typeName(v: PyValue | typeof MARK_OBJ): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (v instanceof PySet) return 'set';
  if (v instanceof PyCallable) return `global ${v.qualname}`;
  if (v instanceof PyConst) return `global ${v.qualname}`;
  if (typeof v === 'object') return (v as PyOpaque).pyKind ?? 'object';
  return typeof v;
}

// Python requires hashable keys; a list or dict key is corrupt input, not something to store.
function hashable(k: PyValue, fail: (w: string) => never): PyValue {
  if (Array.isArray(k) || k instanceof PyDict || (k instanceof PySet && !k.frozen)) fail(`unhashable dict key of type ${typeName(k)}`);
  return k;
}
