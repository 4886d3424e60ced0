// NumPy .npy files (format 1.0): little-endian float32 or uint8 matrices that `numpy.load` reads.
import { UsageError } from '../util/errors.js';
import { readInput, writeFileAtomic } from '../util/fsx.js';

export type NpyArray =
  | { dtype: 'f4'; shape: [number, number]; data: Float32Array }
  | { dtype: 'u1'; shape: [number, number]; data: Uint8Array };

export function encodeNpy(a: NpyArray): Buffer {
  const descr = a.dtype === 'f4' ? '<f4' : '|u1';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${a.shape[0]}, ${a.shape[1]}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    pre,
    Buffer.from(header, 'latin1'),
    Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength),
  ]);
}

export async function writeNpy(file: string, a: NpyArray): Promise<void> {
  await writeFileAtomic(file, encodeNpy(a));
}

export async function readNpy(file: string): Promise<NpyArray> {
  const b = await readInput(file, 'a .npy file');
  const bad = (what: string): UsageError =>
    new UsageError(`Expected a .npy matrix written by \`vec\` in ${JSON.stringify(file)} but ${what}`);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') throw bad('it has no NumPy header');
  const len = b.readUInt16LE(8);
  const header = b.toString('latin1', 10, 10 + len);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header);
  if (!shape || (descr !== '<f4' && descr !== '|u1')) throw bad(`its header is ${header.trim()}`);
  const [n, d] = [Number(shape[1]), Number(shape[2])];
  const body = b.subarray(10 + len);
  const bytes = descr === '<f4' ? 4 : 1;
  if (body.length !== n * d * bytes) throw bad(`it holds ${body.length} bytes for shape (${n}, ${d})`);
  const copy = new Uint8Array(body); // aligned
  return descr === '<f4'
    ? { dtype: 'f4', shape: [n, d], data: new Float32Array(copy.buffer) }
    : { dtype: 'u1', shape: [n, d], data: copy };
}
