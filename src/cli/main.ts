#!/usr/bin/env node
// Entry point of the `alt-i2v-ort` binary: the exit code is set here and nowhere else.
import { runCli } from './index.js';

process.exitCode = await runCli(process.argv.slice(2));
