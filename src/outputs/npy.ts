// NumPy .npy files (format 1.0): little-endian float32 or uint8 matrices that `numpy.load` reads.
import { UsageError } from '../util/errors.js';
import { readInput } from '../util/fsx.js';

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

/**
 * A `vec` matrix from a .npy file, checked before its numbers are used: format 1.0–3.0, dtype '<f4' or
 * '|u1', C order (a Fortran-order file would be read transposed: refused), a 2-D shape whose size is
 * the file's, and every float finite (a NaN row names its number).
 */
export async function readNpy(file: string): Promise<NpyArray> {
  return parseNpy(await readInput(file, 'a .npy file'), file);
}

/** readNpy of bytes already read from `file`. */
export function parseNpy(b: Buffer, file: string): NpyArray {
  const bad = (what: string): UsageError =>
    new UsageError(`Expected a .npy matrix written by \`vec\` in ${JSON.stringify(file)} but ${what}`);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') throw bad('it has no NumPy header');
  const major = b[6]!;
  if (major < 1 || major > 3) throw bad(`it is .npy format ${major}.${b[7]} (expected 1.0, 2.0 or 3.0)`);
  const headerAt = major === 1 ? 10 : 12;
  if (b.length < headerAt) throw bad('its header is cut short');
  const len = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  if (headerAt + len > b.length) throw bad('its header is cut short');
  const header = b.toString(major === 3 ? 'utf8' : 'latin1', headerAt, headerAt + len);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== '<f4' && descr !== '|u1')
    throw bad(`its dtype is ${descr ?? 'missing'} (expected float32 '<f4' or uint8 '|u1')`);
  if (fortran !== 'False')
    throw bad(
      fortran === 'True'
        ? 'it is in Fortran order (save it with numpy.ascontiguousarray first)'
        : 'its header has no fortran_order',
    );
  const dims = (shape ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (dims.length !== 2 || !dims.every((x) => /^\d+$/.test(x)))
    throw bad(`its shape is (${shape ?? ''}) (expected 2 dimensions: rows, width)`);
  const [n, d] = [Number(dims[0]), Number(dims[1])];
  const body = b.subarray(headerAt + len);
  const bytes = descr === '<f4' ? 4 : 1;
  if (body.length !== n * d * bytes) throw bad(`it holds ${body.length} bytes of data for shape (${n}, ${d})`);
  const copy = new Uint8Array(body); // aligned
  if (descr === '|u1') return { dtype: 'u1', shape: [n, d], data: copy };
  const data = new Float32Array(copy.buffer);
  for (let i = 0; i < n; i++)
    if (!data.subarray(i * d, (i + 1) * d).every(Number.isFinite)) throw bad(`row ${i} holds a NaN or an infinity`);
  return { dtype: 'f4', shape: [n, d], data };
}
