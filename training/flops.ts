// FLOPs of the model from its config, counted as 2 × multiply-adds of the convolutions and dense layers
// (element-wise ops, pooling and batch norm are a rounding error next to them and are left out):
// inference, and one training step with only the gradients the freeze depth makes the graph compute.
import { featureCount, POOL_AFTER, type ModelConfig } from './params.js';

export interface LayerFlops {
  layer: string;
  forward: number;
  /** dW (and db) of a trainable layer. */
  dw: number;
  /** dX, computed only when something below the layer is trainable (batch norm, for fc1). */
  dx: number;
}

/** Per-layer FLOPs per image: 13 convs then fc1 and fc2. */
export function layerFlops(c: ModelConfig): LayerFlops[] {
  const out: LayerFlops[] = [];
  let side = c.imageSize;
  let ci = 3;
  for (let i = 0; i < 13; i++) {
    const co = c.widths[i]!;
    const f = 2 * side * side * co * ci * 9;
    // The backward of conv i runs for i ≥ freeze; its dX only when conv i − 1 is trainable too.
    out.push({ layer: `conv${i + 1}`, forward: f, dw: i >= c.freeze ? f : 0, dx: i > c.freeze ? f : 0 });
    ci = co;
    if (POOL_AFTER.has(i)) side /= 2;
  }
  const fc1 = 2 * featureCount(c) * c.hidden;
  const fc2 = 2 * c.hidden * c.tags;
  // fc1's dX is always computed: batch norm's dγ and dβ need it.
  out.push({ layer: 'fc1', forward: fc1, dw: fc1, dx: fc1 });
  out.push({ layer: 'fc2', forward: fc2, dw: fc2, dx: fc2 });
  return out;
}

/** FLOPs per image of the forward pass. */
export const inferenceFlops = (c: ModelConfig): number => layerFlops(c).reduce((a, l) => a + l.forward, 0);

/** FLOPs per image of one training step: the forward pass, then dW and dX where the graph computes them. */
export const trainStepFlops = (c: ModelConfig): number =>
  layerFlops(c).reduce((a, l) => a + l.forward + l.dw + l.dx, 0);
