// Few examples need care: before a head is taught over a tagger's embedding, every tag must have a
// positive to learn from, and a tag with fewer than MIN_POSITIVES in the training or holdout shards is
// named (its holdout AP and threshold are noise).
import { shardPositives, type ShardIndexJson } from '../data/shards.js';
import { UsageError } from '../util/errors.js';

export const MIN_POSITIVES = 5;

export async function checkHeadTags(dir: string, index: ShardIndexJson, warn: (line: string) => void): Promise<void> {
  const train = await shardPositives(dir, index, 'train');
  const holdout = await shardPositives(dir, index, 'holdout');
  const names = index.tags.names;
  const none = names.filter((_, j) => train.counts[j] === 0);
  if (none.length > 0)
    throw new UsageError(
      `Expected at least one training image of every tag in ${JSON.stringify(dir)} but ${none.slice(0, 5).join(', ')}${none.length > 5 ? ` and ${none.length - 5} more have` : none.length > 1 ? ' have' : ' has'} none: remove ${none.length > 1 ? 'them' : 'it'} from the tags file or caption images with ${none.length > 1 ? 'them' : 'it'}, then run pairs again`,
    );
  names.forEach((tag, j) => {
    const [t, h] = [train.counts[j]!, holdout.counts[j]!];
    if (t < MIN_POSITIVES || (holdout.images > 0 && h < MIN_POSITIVES))
      warn(
        `warning: tag ${tag} has ${t} positive${t === 1 ? '' : 's'} in training and ${h} in the holdout: fewer than ${MIN_POSITIVES} gives a noisy head${h < MIN_POSITIVES ? ' and a noisy holdout AP and threshold' : ''}; caption more images with it`,
      );
  });
}
