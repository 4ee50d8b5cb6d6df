// The export formats `chaperone sessions export --format` knows; one module per format.
import { asciicast } from './asciicast.ts';
import { csv } from './csv.ts';
import type { Exporter } from './exporter.ts';
import { har } from './har.ts';
import { jsonl } from './jsonl.ts';

export type { Exporter, ExportOptions, ExportSink } from './exporter.ts';

export const exporters: readonly Exporter[] = [asciicast, jsonl, csv, har];

export function exporterFor(format: string): Exporter | undefined {
  return exporters.find((e) => e.format === format);
}
