// Headless Dawn device: adapter choice, limits, features, toggles, error capture, clean exit.
// See ../shared/reference/webgpu-dawn-notes.md §6 (dawn.node flags and pitfalls).
import { create, globals } from 'webgpu';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, GPUShaderStage, ...

export type Feature = 'timestamp-query' | 'shader-f16' | 'subgroups';
const wantedFeatures: Feature[] = ['timestamp-query', 'shader-f16', 'subgroups'];

export interface EngineDevice {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  info: { vendor: string; architecture: string; device: string; description: string; backend: string };
  features: Set<Feature>;
  limits: GPUSupportedLimits;
  /** A CPU implementation of Vulkan (lavapipe, SwiftShader): kernels pick CPU-friendly plans. */
  isCpu: boolean;
  /**
   * Subgroups of at least 8 lanes with broadcast are usable: matmul-type kernels then load 8 rows
   * of A per lane and broadcast them (lavapipe turns each uniform load inside a loop into a
   * per-lane scalar loop, so this cuts A loads 8x).
   */
  subgroups8: boolean;
  /** Largest subgroup the adapter may use (sizes grids of subgroup-per-row kernels); 0 without subgroups. */
  subgroupMaxSize: number;
  /** WGSL `var<immediate>` + setImmediates are usable (dawn.node >= 2025-11). */
  immediateBytes: number;
  /** First uncaptured error since the last check, with the label Dawn reported. */
  pendingError: Error | null;
  lost: string | null;
}

let current: EngineDevice | null = null;
let creating: Promise<EngineDevice> | null = null;

const installHint =
  'no WebGPU adapter found. On a machine without a GPU install Mesa lavapipe (software Vulkan) as root: ' +
  '`bash scripts/setup-gpu.sh` (Debian bookworm: mesa-vulkan-drivers from bookworm-backports; Mesa 22 is rejected by Dawn). ' +
  'Select an adapter with MRCNN_ADAPTER=<substring of the device name> and a backend with MRCNN_BACKEND=vulkan|metal|d3d12.';

function dawnFlags(): string[] {
  const flags: string[] = [];
  const backend = process.env.MRCNN_BACKEND;
  if (backend) flags.push(`backend=${backend}`);
  const adapterName = process.env.MRCNN_ADAPTER;
  if (adapterName) flags.push(`adapter=${adapterName}`);
  // disable_robustness: bounds clamping costs 30-60% in inner loops (gpuweb#1202); kernels guard themselves.
  // timestamp_quantization off: otherwise 65.5 µs timestamp resolution.
  // lazy_clear off: the pool never relies on zeroed new buffers (accumulators are cleared explicitly).
  const enable = ['disable_robustness', 'allow_unsafe_apis'];
  if (process.env.MRCNN_DEBUG) enable.push('enable_immediate_error_handling', 'use_user_defined_labels_in_backend');
  if (process.env.MRCNN_SKIP_VALIDATION) enable.push('skip_validation');
  flags.push(`enable-dawn-features=${enable.join(',')}`);
  flags.push('disable-dawn-features=timestamp_quantization,lazy_clear_resource_on_first_use');
  return flags;
}

export async function getDevice(): Promise<EngineDevice> {
  if (current) return current;
  if (!creating) creating = createDevice();
  current = await creating;
  return current;
}

/** The device if already created; throws with guidance otherwise (for synchronous engine paths). */
export function deviceSync(): EngineDevice {
  if (!current) throw new Error('engine: device not initialised; `await initEngine()` first');
  return current;
}

async function createDevice(): Promise<EngineDevice> {
  if (!process.env.XDG_RUNTIME_DIR) {
    // The Vulkan loader warns on every start without it (lavapipe, ../shared/reference §6.4).
    const dir = join(tmpdir(), `xdg-${process.getuid?.() ?? 'user'}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  const gpu = create(dawnFlags());
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    throw new Error(`engine: requestAdapter failed (${(e as Error).message}); ${installHint}`);
  }
  if (!adapter) throw new Error(`engine: ${installHint}`);

  const features = new Set<Feature>(wantedFeatures.filter((f) => adapter!.features.has(f)));
  if (process.env.MRCNN_NO_TIMESTAMPS) features.delete('timestamp-query');
  // The WebGPU defaults cap storage bindings at 128 MiB; detection activations need the adapter's own limits.
  const requiredLimits: Record<string, number> = {};
  const lim = adapter.limits as unknown as Record<string, number>;
  for (const k in adapter.limits) {
    const v = lim[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const device = await adapter.requestDevice({
    label: 'mrcnn',
    requiredFeatures: [...features] as GPUFeatureName[],
    requiredLimits,
  });
  const info = adapter.info as unknown as Record<string, string>;
  const langFeatures = (gpu as unknown as { wgslLanguageFeatures?: Set<string> }).wgslLanguageFeatures;
  const immOk =
    !process.env.MRCNN_NO_IMMEDIATES &&
    !!langFeatures?.has('immediate_address_space') &&
    typeof (globals as Record<string, any>).GPUComputePassEncoder?.prototype?.setImmediates === 'function';
  const ed: EngineDevice = {
    gpu,
    adapter,
    device,
    info: {
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      device: info.device ?? '',
      description: info.description ?? '',
      backend: process.env.MRCNN_BACKEND ?? 'default',
    },
    features,
    isCpu: (info.architecture ?? '') === 'software' || /llvmpipe|swiftshader|lavapipe/i.test(`${info.device ?? ''} ${info.description ?? ''}`) || (info.vendor ?? '') === 'mesa' && /llvm/i.test(info.device ?? ''),
    limits: device.limits,
    subgroups8: features.has('subgroups') && !process.env.MRCNN_NO_SUBGROUPS && ((info as unknown as { subgroupMinSize?: number }).subgroupMinSize ?? 0) >= 8,
    subgroupMaxSize: features.has('subgroups') ? Math.min(128, (info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize || 128) : 0,
    immediateBytes: immOk ? (device.limits as unknown as Record<string, number>).maxImmediateSize ?? 0 : 0,
    pendingError: null,
    lost: null,
  };
  device.addEventListener('uncapturederror', (ev) => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    // Throwing inside the event handler would not reach the caller: keep the first error and
    // rethrow it from the next engine call (checkErrors), which names the op in flight.
    if (!ed.pendingError) ed.pendingError = new Error(`webgpu: ${err.constructor.name}: ${err.message}`);
  });
  device.lost.then((l) => {
    if (current === ed && l.reason !== 'destroyed') ed.lost = `device lost (${l.reason}): ${l.message}`;
  });
  return ed;
}

/** Rethrows a captured uncaptured-error or device loss, naming what the engine was doing. */
export function checkErrors(context: string): void {
  const d = current;
  if (!d) return;
  if (d.lost) throw new Error(`engine: ${d.lost} (while ${context})`);
  if (d.pendingError) {
    const e = d.pendingError;
    d.pendingError = null;
    throw new Error(`${e.message} (reported while ${context})`);
  }
}

/** Destroys the device and drops dawn.node's references so the process can exit (crbug 387965810). */
export async function shutdownEngine(): Promise<void> {
  const d = current;
  if (!d) return;
  const hooks = shutdownHooks.splice(0);
  for (const h of hooks) h();
  d.device.destroy();
  current = null;
  creating = null;
}

const shutdownHooks: (() => void)[] = [];
export function onShutdown(fn: () => void): void {
  shutdownHooks.push(fn);
}

export function describeDevice(d: EngineDevice): string {
  const f = [...d.features].join(',') || 'none';
  return `${d.info.vendor} ${d.info.device || d.info.description} (${d.info.architecture || 'unknown arch'}; features ${f}; immediates ${d.immediateBytes} B)`;
}
