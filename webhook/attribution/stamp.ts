// The rule for the launcher annotation, as a pure decision: who may set it to what. The mutating
// webhook applies the decision, the validating webhook refuses any object whose annotation differs
// from it (so a later mutating webhook or a hand-made value cannot slip through).
import type { UserInfo } from '../admission.ts';
import {
  decodeLauncher,
  encodeLauncher,
  isTemplateController,
  LAUNCHED_BY_ANNOTATION,
  type LauncherRequest,
  launcherOf,
} from './launcher.ts';

export interface StampInput {
  req: LauncherRequest;
  operation: 'CREATE' | 'UPDATE';
  /** The annotation on the object as submitted. */
  current: string | undefined;
  /** The annotation on the stored object (UPDATE). */
  previous: string | undefined;
  /** UPDATE: whether the pod template changed apart from the annotation (what runs changed). */
  templateChanged: boolean;
  /** The object has a controller owner reference (created from someone else's template). */
  controlled: boolean;
  controllers?: readonly string[];
}

export type StampDecision =
  | { kind: 'set'; value: string }
  | { kind: 'none' }
  | { kind: 'deny'; message: string };

const forged = (userInfo: UserInfo, what: string): StampDecision => ({
  kind: 'deny',
  message: `annotation ${LAUNCHED_BY_ANNOTATION} ${what}: it records who launched the workload and only chaperone sets it (request by ${userInfo.username ?? 'unknown user'})`,
});

/** Whether a stamp names exactly this user (name, uid, groups, extra), whatever object it came from. */
function sameUser(stamp: string, userInfo: UserInfo): boolean {
  const l = decodeLauncher(stamp);
  if (!l || l instanceof Error || l.unattributed) return false;
  const mine = launcherOf({ userInfo, kind: '', namespace: '' });
  const who = (x: typeof mine) => JSON.stringify([x.username, x.uid, x.groups, x.extra]);
  return who(l) === who(mine);
}

export function decideStamp(input: StampInput): StampDecision {
  const { req, operation, current, previous } = input;
  const controller = isTemplateController(req.userInfo, input.controllers);
  if (current !== undefined && decodeLauncher(current) instanceof Error) {
    return forged(req.userInfo, 'is not a launcher record');
  }
  if (controller && (input.controlled || operation === 'UPDATE')) {
    // A controller copies a template that was itself admitted (and stamped) by this webhook.
    if (current !== undefined) return { kind: 'set', value: current };
    if (previous !== undefined) return { kind: 'set', value: previous };
    return { kind: 'set', value: encodeLauncher(launcherOf(req, true)) };
  }
  const own = encodeLauncher(launcherOf(req));
  if (operation === 'CREATE') {
    // A stamp naming the creator themself (a copy of their own pod) is simply re-stamped.
    if (current === undefined || current === own || sameUser(current, req.userInfo)) {
      return { kind: 'set', value: own };
    }
    return forged(req.userInfo, 'set by the creator names someone else');
  }
  if (input.templateChanged) {
    // Whoever changes what runs launches the next pods.
    if (current === undefined || current === own || current === previous) return { kind: 'set', value: own };
    return forged(req.userInfo, 'edited');
  }
  if (current === undefined || current === previous) {
    return previous === undefined ? { kind: 'none' } : { kind: 'set', value: previous };
  }
  return forged(req.userInfo, previous === undefined ? 'added' : 'edited');
}
