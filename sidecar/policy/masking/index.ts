export {
  type ColumnInfo,
  type ColumnPlanSummary,
  createMasker,
  type Masker,
  type MaskerOptions,
  type MaskResult,
  PG_TYPE,
  type RowMasker,
} from './masker.ts';
export type { MaskStrategy } from './strategies.ts';
