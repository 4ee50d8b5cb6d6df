// The gateway's two events per statement, encoded from templates: only the varying fields go
// through JSON.stringify (a string each), not the payload objects. The bytes are exactly those of
// JSON.stringify on the generic payloads (event-json.test.ts checks it), so the recording format and
// its verification are unchanged.
import { jsonNumber } from '../session/index.ts';

/** pg.query of a simple Query: JSON.stringify({ sql, protocol: 'simple' }). */
export function simpleQueryJson(sql: string): string {
  return `{"sql":${JSON.stringify(sql)},"protocol":"simple"}`;
}

/** pg.result's protocol fields { commandTag, rows }, as written inside the payload object. */
export function resultFieldsJson(commandTag: string, rows: number): string {
  return `"commandTag":${JSON.stringify(commandTag)},"rows":${jsonNumber(rows)}`;
}
