// Attribution: who launched a workload, stamped at admission and carried to its pods.
export {
  decodeLauncher,
  describeLauncher,
  encodeLauncher,
  LAUNCHED_BY_ANNOTATION,
  type Launcher,
  launcherOf,
  TEMPLATE_CONTROLLERS,
} from './launcher.ts';
export { applyStamp, stampFor, stampHolds, WORKLOAD_TEMPLATE_PATHS } from './objects.ts';
export { attributePod, LAUNCHER_ENV, withoutLauncherEnv } from './pod.ts';
export { decideStamp, type StampDecision } from './stamp.ts';
