#!/usr/bin/env node
// Entry point of the `alt-i2v-ort` binary: the exit code is set here and nowhere else.
import { runCli } from './index.js';

// `alt-i2v-ort … | head` closes stdout early: stop quietly instead of crashing on EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2));
