// Adam's update as graph nodes (Keras' constants, host-side bias correction) and the loss-scaling
// unscale with its all-finite flag: what a train graph appends after its gradients to become a step graph.
import { A, Graph } from '../src/onnx/graph.js';
import { io, type ParamSpec } from './params.js';

/**
 * Divides every gradient in `grads` by `scale` (in place in the map); returns a bool scalar: whether
 * all of them are finite (a sum that is NaN or ±∞ times 0 is NaN; a finite one times 0 is 0).
 */
export function unscale(g: Graph, grads: Map<string, string>, scale: string): string {
  const inv = g.op('Reciprocal', [scale], {}, 'inv_loss_scale');
  let total: string | undefined;
  for (const [name, grad] of grads) {
    const u = g.op('Mul', [grad, inv], {}, `unscaled_${name}`);
    grads.set(name, u);
    const sum = g.op('ReduceSum', [u], { keepdims: A.i(0) });
    total = total ? g.op('Add', [total, sum]) : sum;
  }
  const nan = g.op('IsNaN', [g.op('Mul', [total!, g.const(0, 'float32')])]);
  return g.op('Not', [nan], {}, 'all_finite');
}

export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 } as const;

/** [β1, 1−β1, β2, 1−β2] rounded to float32 exactly as adamUpdate's graph constants are. */
export function adamConstants(): number[] {
  return [ADAM.beta1, 1 - ADAM.beta1, ADAM.beta2, 1 - ADAM.beta2].map(Math.fround);
}

/**
 * Host-side bias correction (float64): a_t = lr·√(1−β2^t)/(1−β1^t), ε_t = ε·√(1−β2^t), so the graph
 * computes p − a_t·m/(√v + ε_t), which equals Keras' p − lr·m̂/(√v̂ + ε).
 */
export function adamStepScalars(lr: number, step: number): { lrT: number; epsT: number } {
  const c2 = Math.sqrt(1 - ADAM.beta2 ** step);
  return { lrT: (lr * c2) / (1 - ADAM.beta1 ** step), epsT: ADAM.epsilon * c2 };
}

export function adamScalars(g: Graph): { lr: string; eps: string } {
  return { lr: g.input(io.lr, 'float32', []), eps: g.input(io.eps, 'float32', []) };
}

export function adamUpdate(
  g: Graph,
  s: ParamSpec,
  param: string,
  grad: string,
  sc: { lr: string; eps: string },
  finite?: string,
): void {
  const m = g.input(io.m(s.name), 'float32', s.shape);
  const v = g.input(io.v(s.name), 'float32', s.shape);
  const [b1, c1, b2, c2] = adamConstants().map((k) => g.const(k, 'float32'));
  const mNew = g.op('Add', [g.op('Mul', [m, b1!]), g.op('Mul', [grad, c1!])]);
  const vNew = g.op('Add', [g.op('Mul', [v, b2!]), g.op('Mul', [g.op('Mul', [grad, grad]), c2!])]);
  const step = g.op('Div', [g.op('Mul', [mNew, sc.lr]), g.op('Add', [g.op('Sqrt', [vNew]), sc.eps])]);
  // A skipped step (a non-finite gradient under loss scaling) keeps every value as it was.
  const keep = (next: string, old: string): string => (finite ? g.op('Where', [finite, next, old]) : next);
  g.output(keep(g.op('Sub', [param, step]), param), io.newParam(s.name), 'float32', s.shape);
  g.output(keep(mNew, m), io.newM(s.name), 'float32', s.shape);
  g.output(keep(vNew, v), io.newV(s.name), 'float32', s.shape);
}
