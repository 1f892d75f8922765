// PyTorch .pth reader: the zip format of torch >= 1.6 and the legacy (pre-1.6) pickle stream.
// Tensors are views (offset, shape, stride) into storages; storages are byte ranges of the file.
// Nothing is copied until the state dict is materialised, and that copy is budgeted.
import { WeightsFormatError } from './errors.ts';
import { PyCallable, PyConst, PyDict, PySet, PyTuple, unpickle, typeName, type PyOpaque, type PyValue } from './pickle.ts';
import { isZip, readZipDirectory, zipEntryData } from './zip.ts';
import { bytesPerElement, type HostTensor, type WeightsDType, typedView } from './types.ts';

export interface RootStorage {
  key: string;
  dtype: WeightsDType;
  numel: number;
  /** Little- or big-endian bytes of the whole storage, set once read (legacy files: after the pickle). */
  bytes: Uint8Array | null;
  bigEndian: boolean;
}
export interface StorageRef extends PyOpaque {
  pyKind: 'storage';
  root: RootStorage;
  /** Legacy view storages start `offset` elements into their root. */
  offset: number;
  numel: number;
}
export interface TensorRef extends PyOpaque {
  pyKind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

const STORAGE_DTYPES: Record<string, WeightsDType | string> = {
  FloatStorage: 'f32', HalfStorage: 'f16', BFloat16Storage: 'bf16', DoubleStorage: 'f64', LongStorage: 'i64', IntStorage: 'i32', ByteStorage: 'u8', BoolStorage: 'bool',
  CharStorage: 'int8', ShortStorage: 'int16', ComplexFloatStorage: 'complex64', ComplexDoubleStorage: 'complex128', QInt8Storage: 'qint8', QUInt8Storage: 'quint8', QInt32Storage: 'qint32',
};
const SUPPORTED: ReadonlySet<string> = new Set(['f32', 'f16', 'bf16', 'f64', 'i64', 'i32', 'u8', 'bool']);
const TORCH_DTYPE_NAMES = ['float32', 'float', 'float16', 'half', 'bfloat16', 'float64', 'double', 'int64', 'long', 'int32', 'int', 'uint8', 'bool', 'int8', 'int16', 'short'];

/** The globals a state-dict pickle may name; everything else is refused before anything runs. */
export const ALLOWED_GLOBALS: readonly string[] = [
  'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2', 'torch.Tensor', 'torch.nn.parameter.Parameter', 'torch.Size', 'torch.device',
  'collections.OrderedDict', 'builtins.set', 'builtins.frozenset', '_codecs.encode',
  ...Object.keys(STORAGE_DTYPES).flatMap((s) => [`torch.${s}`, `torch.cuda.${s}`]),
  ...TORCH_DTYPE_NAMES.map((d) => `torch.${d}`),
];

export interface PthOptions {
  /** Cap on bytes materialised into tensors; default 2 x file size + 64 MiB (views of one storage each copy). */
  maxOutputBytes?: number;
}

// protocol-2 pickles spell some Python 3 modules the Python 2 way (pickle's fix_imports)
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', commands: 'subprocess', copy_reg: 'copyreg', cPickle: 'pickle' };

const isInt = (v: PyValue): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function torchGlobals(file: string): (module: string, name: string, off: number) => PyCallable | PyConst {
  const fail = (off: number, what: string): never => {
    throw new WeightsFormatError(file, off, what);
  };
  const intTuple = (v: PyValue, what: string, off: number): number[] => {
    const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : fail(off, `${what} is a ${typeName(v)}, not a tuple`);
    return items.map((x) => (isInt(x) && x >= 0 ? x : fail(off, `${what} holds ${String(x)}, not a non-negative integer`)));
  };
  const asTensor = (v: PyValue, what: string, off: number): TensorRef =>
    typeof v === 'object' && v !== null && (v as PyOpaque).pyKind === 'tensor' ? (v as TensorRef) : fail(off, `${what}: expected a tensor, got a ${typeName(v)}`);
  const rebuildTensor = (args: PyValue[], off: number): TensorRef => {
    if (args.length < 4) fail(off, `_rebuild_tensor_v2 with ${args.length} arguments`);
    const st = args[0] as StorageRef;
    if (typeof st !== 'object' || st === null || st.pyKind !== 'storage') fail(off, `_rebuild_tensor_v2: storage argument is a ${typeName(args[0])}`);
    const offset = isInt(args[1]) && args[1] >= 0 ? args[1] : fail(off, `_rebuild_tensor_v2: storage offset ${String(args[1])}`);
    const shape = intTuple(args[2], 'tensor size', off);
    const stride = intTuple(args[3], 'tensor stride', off);
    if (shape.length !== stride.length) fail(off, `tensor size [${shape}] and stride [${stride}] differ in rank`);
    let numel = 1;
    let last = offset;
    for (let i = 0; i < shape.length; i++) {
      numel *= shape[i];
      last += (shape[i] - 1) * stride[i];
    }
    if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(last)) fail(off, `tensor size [${shape}] stride [${stride}] overflows`);
    if (numel > 0 && last >= st.numel) fail(off, `tensor view (offset ${offset}, size [${shape}], stride [${stride}]) reaches element ${last} of a ${st.numel}-element storage`);
    return { pyKind: 'tensor', storage: st, offset, shape, stride };
  };
  return (module, name, off) => {
    const q = `${module}.${name}`;
    const py3 = PY2_MODULES[module] ? ` (Python 3: ${PY2_MODULES[module]}.${name})` : '';
    if (!ALLOWED_GLOBALS.includes(q)) fail(off, `pickle: global ${q}${py3} is not allowed (refused, nothing was run); a weights file may only name tensor-rebuilding globals such as torch._utils._rebuild_tensor_v2, collections.OrderedDict and torch.*Storage`);
    switch (q) {
      case 'torch._utils._rebuild_tensor_v2':
      case 'torch._utils._rebuild_tensor':
        return new PyCallable(q, rebuildTensor);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
      case 'torch.nn.parameter.Parameter':
        return new PyCallable(q, (a, o) => asTensor(a[0], q, o));
      case 'torch._tensor._rebuild_from_type_v2':
        return new PyCallable(q, (a, o) => {
          const f = a[0];
          if (!(f instanceof PyCallable) || !(a[2] instanceof PyTuple)) return fail(o, `${q}: needs a whitelisted function and an argument tuple`);
          return asTensor(f.call(a[2].items, o), q, o);
        });
      case 'collections.OrderedDict':
        return new PyCallable(q, (a, o) => {
          const d = new PyDict();
          if (a.length === 0) return d;
          const src = Array.isArray(a[0]) ? a[0] : fail(o, `OrderedDict from a ${typeName(a[0])}`);
          for (const kv of src) {
            if (!(kv instanceof PyTuple) || kv.items.length !== 2) fail(o, 'OrderedDict item is not a pair');
            d.map.set((kv as PyTuple).items[0], (kv as PyTuple).items[1]);
          }
          return d;
        });
      case 'torch.Size':
        return new PyCallable(q, (a, o) => new PyTuple(a.length ? intTuple(a[0], 'torch.Size', o) : []));
      case 'torch.device':
        return new PyCallable(q, (a) => a.map(String).join(':'));
      case 'builtins.set':
      case 'builtins.frozenset':
        return new PyCallable(q, (a, o) => new PySet(a.length ? (Array.isArray(a[0]) ? a[0].slice() : a[0] instanceof PyTuple ? a[0].items.slice() : fail(o, `${q} of a ${typeName(a[0])}`)) : [], name === 'frozenset'));
      case '_codecs.encode':
        // protocol-2 pickles write Python 3 bytes as _codecs.encode(text, 'latin1')
        return new PyCallable(q, (a, o) => {
          if (typeof a[0] !== 'string' || (a[1] !== 'latin1' && a[1] !== 'latin-1')) return fail(o, `_codecs.encode(${typeName(a[0])}, ${String(a[1])}) is not a latin1 bytes literal`);
          const s = a[0];
          const out = new Uint8Array(s.length);
          for (let i = 0; i < s.length; i++) {
            const c = s.charCodeAt(i);
            if (c > 255) return fail(o, '_codecs.encode: character outside latin1');
            out[i] = c;
          }
          return out;
        });
      default:
        return new PyConst(q);
    }
  };
}

function storageDType(t: PyValue, file: string, off: number): WeightsDType {
  const q = t instanceof PyConst ? t.qualname : null;
  const base = q?.replace(/^torch\.(cuda\.)?/, '');
  const d = base ? STORAGE_DTYPES[base] : undefined;
  if (!d) throw new WeightsFormatError(file, off, `storage type is ${t instanceof PyConst ? t.qualname : typeName(t)}, not a torch *Storage`);
  if (!SUPPORTED.has(d)) throw new WeightsFormatError(file, off, `dtype ${d} (${q}) is not supported; supported: ${[...SUPPORTED].join(', ')}`);
  return d as WeightsDType;
}

function pidParts(pid: PyValue, file: string, off: number): PyValue[] {
  if (!(pid instanceof PyTuple) || pid.items.length < 5) throw new WeightsFormatError(file, off, `persistent id is a ${typeName(pid)}${pid instanceof PyTuple ? ` of ${pid.items.length}` : ''}, not a storage tuple`);
  const kind = pid.items[0];
  const k = kind instanceof Uint8Array ? Buffer.from(kind.subarray(0, 64)).toString('latin1') : kind;
  if (typeof k !== 'string' || k.toLowerCase() !== 'storage') throw new WeightsFormatError(file, off, `persistent id kind ${JSON.stringify(String(k)).slice(0, 60)} (only storages are loaded)`);
  return pid.items;
}

const keyString = (v: PyValue, file: string, off: number): string =>
  typeof v === 'string' ? v : isInt(v) ? String(v) : (() => {
    throw new WeightsFormatError(file, off, `storage key is a ${typeName(v)}`);
  })();

export interface PthFile {
  format: 'pth-zip' | 'pth-legacy';
  root: PyValue;
}

export function parsePthZip(buf: Uint8Array, file: string): PthFile {
  const entries = readZipDirectory(buf, file);
  const pkl = [...entries.values()].find((e) => e.name.endsWith('data.pkl') && e.name.split('/').length === 2);
  if (!pkl) throw new WeightsFormatError(file, -1, `zip has no <archive>/data.pkl entry (not a torch.save file); entries: ${[...entries.keys()].slice(0, 6).join(', ')}`);
  const prefix = pkl.name.slice(0, -'data.pkl'.length);
  let bigEndian = false;
  const bo = entries.get(`${prefix}byteorder`);
  if (bo) {
    const s = new TextDecoder().decode(zipEntryData(buf, bo, file));
    if (s !== 'little' && s !== 'big') throw new WeightsFormatError(file, bo.dataOffset, `byteorder record ${JSON.stringify(s.slice(0, 20))}`);
    bigEndian = s === 'big';
  }
  const roots = new Map<string, RootStorage>();
  const pklData = zipEntryData(buf, pkl, file);
  const { value } = unpickle(pklData, 0, {
    file: `${file}:${pkl.name}`,
    resolveGlobal: torchGlobals(`${file}:${pkl.name}`),
    persistentLoad(pid, off) {
      const [, type, keyV, , numelV] = pidParts(pid, file, off);
      const dtype = storageDType(type, file, off);
      const key = keyString(keyV, file, off);
      if (!isInt(numelV) || numelV < 0) throw new WeightsFormatError(file, off, `storage ${key}: element count ${String(numelV)}`);
      let root = roots.get(key);
      if (!root) {
        const e = entries.get(`${prefix}data/${key}`);
        if (!e) throw new WeightsFormatError(file, off, `storage ${key}: no entry ${prefix}data/${key}`);
        if (e.size !== numelV * bytesPerElement(dtype)) throw new WeightsFormatError(file, e.dataOffset, `storage ${key}: entry holds ${e.size} bytes, the pickle says ${numelV} x ${dtype}`);
        root = { key, dtype, numel: numelV, bytes: zipEntryData(buf, e, file), bigEndian };
        roots.set(key, root);
      } else if (root.dtype !== dtype || root.numel !== numelV) {
        throw new WeightsFormatError(file, off, `storage ${key} used as ${numelV} x ${dtype} and ${root.numel} x ${root.dtype}`);
      }
      return { pyKind: 'storage', root, offset: 0, numel: root.numel } satisfies StorageRef;
    },
  });
  return { format: 'pth-zip', root: value };
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

export function parsePthLegacy(buf: Uint8Array, file: string): PthFile {
  const noGlobals = (m: string, n: string, off: number): never => {
    throw new WeightsFormatError(file, off, `pickle: global ${m}.${n} is not allowed in the legacy header (refused, nothing was run)`);
  };
  const m = unpickle(buf, 0, { file, resolveGlobal: noGlobals });
  if (m.value !== LEGACY_MAGIC) throw new WeightsFormatError(file, 0, `not a torch legacy file: magic number ${String(m.value).slice(0, 40)}`);
  const pv = unpickle(buf, m.end, { file, resolveGlobal: noGlobals });
  if (pv.value !== 1001) throw new WeightsFormatError(file, m.end, `legacy protocol version ${String(pv.value).slice(0, 40)} (expected 1001)`);
  const si = unpickle(buf, pv.end, { file, resolveGlobal: noGlobals });
  if (!(si.value instanceof PyDict)) throw new WeightsFormatError(file, pv.end, 'legacy sys_info is not a dict');
  const roots = new Map<string, RootStorage>();
  const views = new Map<string, StorageRef>();
  const obj = unpickle(buf, si.end, {
    file,
    resolveGlobal: torchGlobals(file),
    persistentLoad(pid, off) {
      const [, type, keyV, , numelV, view] = pidParts(pid, file, off);
      const dtype = storageDType(type, file, off);
      const key = keyString(keyV, file, off);
      if (!isInt(numelV) || numelV < 0 || numelV * bytesPerElement(dtype) > buf.byteLength) throw new WeightsFormatError(file, off, `storage ${key}: element count ${String(numelV)} (file is ${buf.byteLength} bytes)`);
      let root = roots.get(key);
      if (!root) roots.set(key, (root = { key, dtype, numel: numelV, bytes: null, bigEndian: false }));
      else if (root.dtype !== dtype || root.numel !== numelV) throw new WeightsFormatError(file, off, `storage ${key} used as ${numelV} x ${dtype} and ${root.numel} x ${root.dtype}`);
      if (view === null || view === undefined) return { pyKind: 'storage', root, offset: 0, numel: root.numel } satisfies StorageRef;
      // (view_key, offset, view_size) in elements: a storage slice of the root (torch < 1.0 files)
      if (!(view instanceof PyTuple) || view.items.length !== 3) throw new WeightsFormatError(file, off, `storage ${key}: view metadata is a ${typeName(view)}`);
      const [vk, vo, vs] = view.items;
      if (!isInt(vo) || !isInt(vs) || vo < 0 || vs < 0 || vo + vs > root.numel) throw new WeightsFormatError(file, off, `storage ${key}: view [${String(vo)}, +${String(vs)}) outside ${root.numel} elements`);
      const vkey = keyString(vk, file, off);
      let v = views.get(vkey);
      if (!v) views.set(vkey, (v = { pyKind: 'storage', root, offset: vo, numel: vs }));
      return v;
    },
  });
  const keys = unpickle(buf, obj.end, { file, resolveGlobal: noGlobals });
  if (!Array.isArray(keys.value)) throw new WeightsFormatError(file, obj.end, `legacy storage key list is a ${typeName(keys.value)}`);
  let p = keys.end;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const kv of keys.value) {
    const key = keyString(kv, file, p);
    const root = roots.get(key);
    if (!root) throw new WeightsFormatError(file, p, `legacy storage key ${key} was never referenced by the pickle`);
    if (root.bytes) throw new WeightsFormatError(file, p, `legacy storage ${key} listed twice`);
    if (p + 8 > buf.byteLength) throw new WeightsFormatError(file, p, `storage ${key}: size field past end of file`);
    // torch writes the element count and the data little-endian whatever the host (THPStorage_writeFileRaw)
    const count = dv.getBigInt64(p, true);
    if (count !== BigInt(root.numel)) throw new WeightsFormatError(file, p, `storage ${key}: stored element count ${count} != ${root.numel} from the pickle`);
    const nb = root.numel * bytesPerElement(root.dtype);
    if (p + 8 + nb > buf.byteLength) throw new WeightsFormatError(file, p, `storage ${key}: ${nb} bytes of data run past the end of the file (${buf.byteLength})`);
    root.bytes = buf.subarray(p + 8, p + 8 + nb);
    p += 8 + nb;
  }
  for (const r of roots.values()) if (!r.bytes) throw new WeightsFormatError(file, p, `storage ${r.key} is referenced but its data is not in the file`);
  return { format: 'pth-legacy', root: obj.value };
}

export function isLegacyPth(buf: Uint8Array): boolean {
  // PROTO n, then (protocol 4+) maybe a FRAME, then LONG1 of the 10-byte magic number
  if (buf.length < 4 || buf[0] !== 0x80) return false;
  const i = buf[2] === 0x95 ? 11 : 2;
  return buf[i] === 0x8a && buf[i + 1] === 0x0a;
}

export function parsePth(buf: Uint8Array, file: string): PthFile {
  if (isZip(buf)) return parsePthZip(buf, file);
  if (isLegacyPth(buf)) return parsePthLegacy(buf, file);
  if (buf.length >= 262 && String.fromCharCode(...buf.subarray(257, 262)) === 'ustar') throw new WeightsFormatError(file, 257, 'tar-format torch file (saved by torch < 0.4?): not supported; re-save it with a newer torch');
  throw new WeightsFormatError(file, 0, 'neither a torch zip archive nor a legacy torch pickle');
}

export const isTensorRef = (v: PyValue): v is TensorRef => typeof v === 'object' && v !== null && (v as PyOpaque).pyKind === 'tensor';

const STATE_DICT_KEYS = ['state_dict', 'model', 'model_state_dict', 'module', 'net'];

/**
 * The dict of tensors in a loaded object: the object itself, or the first of `state_dict`, `model`,
 * `model_state_dict`, ... that holds tensors (checkpoints nest the weights beside optimizer state).
 * Nested dicts of tensors flatten to dotted keys.
 */
export function findStateDict(root: PyValue, file: string): Map<string, TensorRef> {
  const hasTensors = (d: PyDict): boolean => [...d.map.values()].some((v) => isTensorRef(v) || (v instanceof PyDict && [...v.map.values()].some(isTensorRef)));
  let d = root;
  for (let depth = 0; depth < 8 && d instanceof PyDict; depth++) {
    const inner = STATE_DICT_KEYS.map((k) => (d as PyDict).map.get(k)).find((v) => v instanceof PyDict && hasTensors(v));
    if (!inner) break;
    d = inner;
  }
  if (!(d instanceof PyDict)) throw new WeightsFormatError(file, -1, `the saved object is a ${typeName(d)}, not a dict of tensors`);
  const out = new Map<string, TensorRef>();
  const seen = new Set<PyDict>();
  const walk = (x: PyDict, prefix: string, depth: number): void => {
    if (seen.has(x) || depth > 32) return; // recursive or absurdly deep structures are not weights
    seen.add(x);
    for (const [k, v] of x.map) {
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      if (isTensorRef(v)) out.set(prefix + String(k), v);
      else if (v instanceof PyDict) walk(v, `${prefix}${String(k)}.`, depth + 1);
    }
  };
  walk(d, '', 0);
  if (out.size === 0) {
    const keys = [...d.map.keys()].slice(0, 8).map(String);
    throw new WeightsFormatError(file, -1, `no tensors found; top-level keys: ${keys.join(', ')}`);
  }
  return out;
}

/** Copies each tensor view into its own contiguous little-endian typed array. */
export function materialize(refs: Map<string, TensorRef>, file: string, maxOutputBytes: number): Map<string, HostTensor> {
  let used = 0;
  const out = new Map<string, HostTensor>();
  for (const [name, t] of refs) {
    const st = t.storage;
    const root = st.root;
    const es = bytesPerElement(root.dtype);
    let numel = 1;
    for (const d of t.shape) numel *= d;
    used += numel * es;
    if (used > maxOutputBytes) throw new WeightsFormatError(file, -1, `${name} [${t.shape}] ${root.dtype}: tensors would need over ${maxOutputBytes} bytes (limit: 2 x file size + 64 MiB by default; views of one storage each copy)`);
    if (!root.bytes) throw new WeightsFormatError(file, -1, `${name}: storage ${root.key} has no data`);
    const buf = new ArrayBuffer(numel * es);
    const dst = new Uint8Array(buf);
    const src = root.bytes;
    const base = st.offset + t.offset;
    // Trailing dims laid out contiguously collapse into one block copied with a single set();
    // the remaining outer dims are walked with an odometer.
    let block = 1;
    let outerRank = t.shape.length;
    while (outerRank > 0 && (t.stride[outerRank - 1] === block || t.shape[outerRank - 1] === 1)) block *= t.shape[--outerRank];
    const blockBytes = block * es;
    const idx = new Array<number>(outerRank).fill(0);
    for (let o = 0; o < dst.length; o += blockBytes) {
      let e = base;
      for (let d = 0; d < outerRank; d++) e += idx[d] * t.stride[d];
      if (blockBytes === es && es <= 8) for (let b = 0; b < es; b++) dst[o + b] = src[e * es + b];
      else dst.set(src.subarray(e * es, e * es + blockBytes), o);
      for (let d = outerRank - 1; d >= 0; d--) {
        if (++idx[d] < t.shape[d]) break;
        idx[d] = 0;
      }
    }
    if (root.bigEndian && es > 1) for (let i = 0; i < dst.length; i += es) dst.subarray(i, i + es).reverse();
    out.set(name, { dtype: root.dtype, shape: t.shape.slice(), data: typedView(root.dtype, buf, 0, numel) });
  }
  return out;
}

export function readPthBuffer(buf: Uint8Array, file: string, opts: PthOptions = {}): Map<string, HostTensor> {
  const { root } = parsePth(buf, file);
  return materialize(findStateDict(root, file), file, opts.maxOutputBytes ?? 2 * buf.byteLength + (64 << 20));
}
