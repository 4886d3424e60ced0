// Video frames (MP4, WebM, MKV, MOV) through ffmpeg, when it is on PATH: ffprobe reads the stream's size
// and duration, then each of N frames evenly spaced in time (frame i at (i + ½)/N of the duration) is taken
// by one ffmpeg call as a PNG, one at a time, so memory holds one frame whatever the video's length.
// An upload (bytes) goes through a private temp file, removed after; MP4 may keep its index at the end.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const VIDEO_EXTENSIONS = ['.mp4', '.webm', '.mkv', '.mov', '.m4v'];

/** Whether `file` names a video by its extension. */
export const isVideoFile = (file: string): boolean => VIDEO_EXTENSIONS.includes(path.extname(file).toLowerCase());

/** ffmpeg's version line, or undefined where it is not on PATH. */
export function ffmpegVersion(): string | undefined {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]!.trim() : undefined;
}

export const FFMPEG_HINT =
  'reading video needs ffmpeg on PATH (Debian/Ubuntu: apt install ffmpeg; macOS: brew install ffmpeg)';

/** Why a video cannot be read, in words (the reason of an ImageError). */
export class VideoError extends Error {
  constructor(
    readonly reason: 'unreadable' | 'too-large',
    message: string,
  ) {
    super(message);
  }
}

function runTool(cmd: string, args: string[]): Promise<{ code: number | null; out: Buffer; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new VideoError('unreadable', FFMPEG_HINT) : e),
    );
    child.on('close', (code) => resolve({ code, out: Buffer.concat(out), err }));
  });
}

const lastLine = (text: string): string => text.trim().split('\n').at(-1)?.trim() || 'no reason given';

/**
 * `count` frames of the video `input` (a path, or bytes to be written to a temp file) as PNGs, frame i
 * at (i + ½)/count of its duration, each handed to `each` before the next is decoded.
 */
export async function videoFrames(
  input: string | Buffer,
  count: number,
  maxPixels: number,
  each: (png: Buffer) => Promise<void>,
): Promise<number> {
  let dir: string | undefined;
  let file = typeof input === 'string' ? input : '';
  try {
    if (typeof input !== 'string') {
      dir = await mkdtemp(path.join(os.tmpdir(), 'alt-i2v-video-'));
      file = path.join(dir, 'upload');
      await writeFile(file, input, { mode: 0o600 });
    }
    // ffmpeg reads a name as a protocol URL (`concat:…`, `http:…`) or an option (`-…`): a file it is.
    const url = `file:${path.resolve(file)}`;
    const probe = await runTool('ffprobe', [
      '-v', 'error', '-select_streams', 'v:0',
      '-show_entries', 'stream=width,height:format=duration', '-of', 'json', url,
    ]); // prettier-ignore
    if (probe.code !== 0) throw new VideoError('unreadable', `ffprobe: ${lastLine(probe.err)}`);
    const info = JSON.parse(probe.out.toString()) as {
      streams?: { width?: number; height?: number }[];
      format?: { duration?: string };
    };
    const { width = 0, height = 0 } = info.streams?.[0] ?? {};
    const duration = Number(info.format?.duration);
    if (!(width > 0 && height > 0)) throw new VideoError('unreadable', 'it has no video stream');
    if (width * height > maxPixels)
      throw new VideoError('too-large', `its frames are ${width}×${height}, beyond ${maxPixels} pixels`);
    // The middle of each of `count` equal spans: never the very first frame (a fade-in) nor the end.
    const times =
      Number.isFinite(duration) && duration > 0
        ? Array.from({ length: count }, (_, i) => (duration * (i + 0.5)) / count)
        : [0];
    for (const t of times) {
      const r = await runTool('ffmpeg', [
        '-v', 'error', '-ss', t.toFixed(3), '-i', url,
        '-frames:v', '1', '-f', 'image2pipe', '-vcodec', 'png', '-',
      ]); // prettier-ignore
      if (r.code !== 0 || r.out.length === 0)
        throw new VideoError('unreadable', `ffmpeg at ${t.toFixed(2)} s: ${lastLine(r.err || 'no frame there')}`);
      await each(r.out);
    }
    return times.length;
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}
