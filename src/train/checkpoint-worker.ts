// The thread CheckpointWriter hands checkpoints to: hashes and writes one (writeCheckpointFile: temp
// name, fsync, rename) while the training loop goes on, then hands the snapshot's buffers back for reuse.
import { parentPort } from 'node:worker_threads';
import { messageOf } from '../util/errors.js';
import { writeCheckpointFile, type CheckpointPayload } from './checkpoint.js';
import { transferList } from './checkpoint-writer.js';

type Job = Pick<CheckpointPayload, 'file' | 'tensors' | 'metadata'>;

parentPort!.on('message', (job: Job) => {
  writeCheckpointFile(job).then(
    () => parentPort!.postMessage({ ok: true, tensors: job.tensors }, transferList(job.tensors)),
    (err: unknown) =>
      parentPort!.postMessage(
        { ok: false, name: (err as Error)?.name, message: messageOf(err), tensors: job.tensors },
        transferList(job.tensors),
      ),
  );
});
