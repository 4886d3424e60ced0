// HF_HUB_DOWNLOAD_TIMEOUT is read as huggingface_hub reads it (its constants module:
// `_as_int(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT")) or DEFAULT_DOWNLOAD_TIMEOUT`: whole seconds, 0 or
// unset meaning the default), with our default of 60 s in place of its 10.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_DOWNLOAD_TIMEOUT_S, downloadTimeoutS } from '../../src/hub/hf-http.js';

test('HF_HUB_DOWNLOAD_TIMEOUT: whole seconds 1–86400, else one line naming the variable; unset, empty or 0 is 60', () => {
  assert.equal(DEFAULT_DOWNLOAD_TIMEOUT_S, 60);
  assert.equal(downloadTimeoutS({}), 60);
  assert.equal(downloadTimeoutS({ HF_HUB_DOWNLOAD_TIMEOUT: '' }), 60);
  assert.equal(downloadTimeoutS({ HF_HUB_DOWNLOAD_TIMEOUT: '0' }), 60);
  assert.equal(downloadTimeoutS({ HF_HUB_DOWNLOAD_TIMEOUT: '1' }), 1);
  assert.equal(downloadTimeoutS({ HF_HUB_DOWNLOAD_TIMEOUT: '86400' }), 86400);
  for (const bad of ['-1', '1.5', 'ten', '86401'])
    assert.throws(
      () => downloadTimeoutS({ HF_HUB_DOWNLOAD_TIMEOUT: bad }),
      new RegExp(`in HF_HUB_DOWNLOAD_TIMEOUT but it holds "${bad.replace('.', '\\.')}"`),
    );
});
