// Guardrails of ssh targets: `commandPattern` (RE2) on exec command lines and on the shell lines
// reconstructed at Enter, `pathPattern` (RE2) on the paths of sftp and scp file operations. First
// match wins, as for SQL; rules with SQL or HTTP fields never apply here.
import { RE2JS } from 're2js';
import { type Guardrail, guardrailAppliesTo } from '../../crds/index.ts';
import type { GuardDecision } from '../session/index.ts';

interface CompiledRule {
  name: string;
  action: GuardDecision['action'];
  message: string | undefined;
  pattern: RE2JS;
}

const ALLOW: GuardDecision = Object.freeze({ action: 'allow' });

export interface SshGuard {
  /** An exec command or a shell line. Never throws. */
  command(text: string): GuardDecision;
  /** A file path of an sftp or scp operation. Never throws. */
  path(path: string): GuardDecision;
  /** Several paths of one operation: the strictest decision (anything over alert over allow). */
  paths(paths: readonly string[]): GuardDecision;
  /** How many command rules apply (uncertain shell lines are refused when there are any). */
  commandRules: number;
  /** How many path rules apply (legacy scp is only parsed when there are any). */
  pathRules: number;
}

function compile(rules: readonly Guardrail[], target: string, field: 'commandPattern' | 'pathPattern') {
  const other = field === 'commandPattern' ? 'pathPattern' : 'commandPattern';
  return rules
    .filter(
      (r) =>
        (r.targets === undefined || r.targets.includes(target)) &&
        guardrailAppliesTo(r.match, 'ssh') &&
        r.match[field] !== undefined &&
        r.match[other] === undefined,
    )
    .map(
      (r): CompiledRule => ({
        name: r.name,
        action: r.action,
        message: r.message,
        pattern: RE2JS.compile(r.match[field]!),
      }),
    );
}

function decide(rules: readonly CompiledRule[], text: string): GuardDecision {
  for (const rule of rules) {
    if (rule.pattern.test(text)) {
      return Object.freeze({ action: rule.action, rule: rule.name, message: rule.message });
    }
  }
  return ALLOW;
}

export function createSshGuard(rules: readonly Guardrail[], target: string): SshGuard {
  const commands = compile(rules, target, 'commandPattern');
  const paths = compile(rules, target, 'pathPattern');
  const path = (p: string) => decide(paths, p);
  return {
    command: (text) => decide(commands, text),
    path,
    paths: (all) => {
      let decision = ALLOW;
      for (const p of all) {
        const d = path(p);
        if (decision.action === 'allow' || (decision.action === 'alert' && d.action !== 'allow'))
          decision = d;
      }
      return decision;
    },
    commandRules: commands.length,
    pathRules: paths.length,
  };
}
