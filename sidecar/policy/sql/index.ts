export { classifySql, loadSqlParser, type SqlClassification } from './classify.ts';
export { createSqlGuard, type SqlDecision, type SqlGuard, type SqlGuardOptions } from './guard.ts';
