// Reverse-mode autograd. Each differentiable op is an OpDef: forward and backward side by side
// (micrograd style). Op tables are declared `satisfies Record<string, OpDef>`, and `backward` is a
// required field ('none' for ops without a gradient), so a missing backward fails `tsc`.
import { Tensor, tidy, viewOf } from './tensor.ts';

export interface OpDef<A = any> {
  /** Launches the kernels; inputs may be any views; returns a new tensor. Runs without grad. */
  forward: (inputs: Tensor[], attrs: A) => Tensor;
  /** Tensors the backward reads (inputs and/or the output); they stay alive until backward. */
  save?: (inputs: Tensor[], out: Tensor, attrs: A) => Tensor[];
  /**
   * Upstream grad (shape of the output) → grads of each input (null: none). Receives the saved
   * tensors and the input shapes/dtypes (inputs themselves may be freed by then).
   */
  backward: ((g: Tensor, saved: Tensor[], attrs: A, inputs: InputMeta[]) => (Tensor | null)[]) | 'none';
}

export interface InputMeta { shape: number[]; dtype: Tensor['dtype']; requiresGrad: boolean }

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the graph (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// Profiling tags (engine/runtime.ts Profiler): a plain string slot the runtime reads per dispatch.
let currentTag: string | undefined;
export const tagNow = () => currentTag;
/** Sets the tag dispatches are attributed to; returns the previous one. */
export function setTag(t: string | undefined): string | undefined {
  const p = currentTag;
  currentTag = t;
  return p;
}

/** Runs one op: forward, and (if any input requires grad) records the node. */
export function apply<A>(name: string, def: OpDef<A>, inputs: Tensor[], attrs: A): Tensor {
  for (const t of inputs) if (t.disposed) throw new Error(`${name}: input tensor ${t.id} [${t.shape}] was disposed`);
  const prev = gradEnabled;
  gradEnabled = false;
  let out: Tensor;
  try {
    out = def.forward(inputs, attrs);
  } finally {
    gradEnabled = prev;
  }
  if (!gradEnabled || def.backward === 'none' || !inputs.some((t) => t.requiresGrad)) return out;
  const backward = def.backward;
  const saved = def.save ? def.save(inputs, out, attrs).map((t) => viewOf(t, t.shape, t.strides, t.offset).keep()) : [];
  const meta: InputMeta[] = inputs.map((t) => ({ shape: t.shape.slice(), dtype: t.dtype, requiresGrad: t.requiresGrad }));
  out.requiresGrad = true;
  out.node = {
    op: name,
    inputs,
    saved,
    backward: (g, s) => backward(g, s, attrs, meta),
    tag: tagNow(),
  };
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  // Iterative DFS: detection graphs are deep enough to overflow recursion.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root.id);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const ins = t.node?.inputs ?? [];
    if (i < ins.length) {
      top[1]++;
      const c = ins[i];
      if (c.requiresGrad && !seen.has(c.id)) {
        seen.add(c.id);
        stack.push([c, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

/**
 * Backpropagates from `root` (a scalar unless `grad` is given). Leaf tensors with requiresGrad
 * accumulate into `.grad`; intermediate grads and the graph's saved tensors are freed as soon as
 * they are consumed (torch's retain_graph=False).
 */
export function backward(root: Tensor, grad?: Tensor, ones?: (shape: number[]) => Tensor, add?: (a: Tensor, b: Tensor) => Tensor, contiguous?: (t: Tensor) => Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward: tensor [${root.shape}] does not require grad`);
  if (!grad && root.size !== 1) throw new Error(`backward: root has shape [${root.shape}]; pass a grad for non-scalar roots`);
  if (!ones || !add) throw new Error('backward: internal: ones/add not provided');
  const order = topoOrder(root);
  const grads = new Map<number, Tensor>();
  const seed = grad ?? ones(root.shape);
  grads.set(root.id, seed === grad ? viewOf(seed, seed.shape, seed.strides, seed.offset).keep() : seed.keep());
  noGrad(() => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t.id);
      if (!g) continue;
      grads.delete(t.id);
      const node = t.node;
      if (!node) {
        // Leaf: accumulate; .grad is always a contiguous tensor of the leaf's shape (optimizers rely on it).
        if (!g.isContiguous && contiguous) {
          const c = contiguous(g).keep();
          g.dispose();
          grads.set(t.id, c);
          k++;
          continue;
        }
        if (t.grad) {
          const sum = add(t.grad, g).keep();
          t.grad.dispose();
          g.dispose();
          t.grad = sum;
        } else {
          t.grad = g;
        }
        continue;
      }
      const ins = node.inputs;
      // Fresh handles: a backward may return g itself or one tensor for two inputs (add).
      const prevTag = setTag(node.tag === undefined ? undefined : `${node.tag}:bwd`);
      const inGrads = tidy(() => node.backward(g, node.saved).map((x) => (x ? viewOf(x, x.shape, x.strides, x.offset).keep() : null)));
      setTag(prevTag);
      g.dispose();
      for (const s of node.saved) s.dispose();
      node.saved = [];
      t.node = null;
      inGrads.forEach((ig, i) => {
        if (!ig) return;
        const inp = ins[i];
        if (!inp.requiresGrad) {
          ig.dispose();
          return;
        }
        if (ig.shape.join() !== inp.shape.join()) throw new Error(`backward: ${node.op} gave grad [${ig.shape}] for input ${i} of shape [${inp.shape}]`);
        const prev = grads.get(inp.id);
        if (prev) {
          grads.set(inp.id, add(prev, ig).keep());
          prev.dispose();
          ig.dispose();
        } else {
          grads.set(inp.id, ig);
        }
      });
    }
  });
  for (const g of grads.values()) g.dispose();
}

/** Frees the graph hanging off `t` without computing grads (e.g. after an aborted step). */
export function freeGraph(t: Tensor): void {
  for (const x of topoOrder(t)) {
    if (x.node) {
      for (const s of x.node.saved) s.dispose();
      x.node = null;
    }
  }
}
