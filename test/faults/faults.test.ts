// The fault suite (a new user's worst day): full disks, kills at random moments, two writers, crafted
// and damaged files, symlinks, odd encodings. It ends with `faults: N cases, N hold`.
import { registerContracts } from './contract-cases.js';
import { registerCrafted } from './crafted-cases.js';
import { registerDisk } from './disk-cases.js';
import { registerForeign } from './foreign-cases.js';
import { registerTrust } from './trust-cases.js';
import { registerHostile } from './hostile-cases.js';
import { summary } from './harness.js';
import { registerKills } from './kill-cases.js';
import { registerQuantize } from './quantize-cases.js';
import { registerLocks } from './lock-cases.js';
import { registerPrecision } from './precision-cases.js';
import { registerTeach } from './teach-cases.js';
import { registerHydrus } from './hydrus-cases.js';

// The kill cases time reference runs first, so every case is registered after them.
await registerKills({ pairs: 10, train: 10 });
registerDisk();
registerCrafted();
registerForeign();
registerTrust();
registerHostile();
registerContracts();
registerQuantize();
registerLocks();
registerPrecision();
registerTeach();
registerHydrus();
summary();
