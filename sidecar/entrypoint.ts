// What the sidecar's image runs: Node flags and environment that keep the sidecar's memory flat.
// Measured in docs/benchmarks.md ("The sidecar's memory" and "Recording pipeline"):
// - `--liftoff-only`: the SQL guard's parser is libpg_query compiled to WebAssembly. By default V8
//   recompiles its hot functions (the parser's one huge function) with TurboFan in the background,
//   and that compilation alone takes 500-600 MiB of anonymous memory for about a second: the sidecar
//   peaked at 703 MiB (RSS) in its first three sessions and was OOM-killed under a 512Mi limit.
//   Liftoff, V8's baseline WebAssembly compiler, parses statements of this size as fast (42 vs 52 µs
//   per statement) and the peak stays near 100 MiB. Only WebAssembly is affected, not JavaScript.
// - `--max-semi-space-size=1 --optimize-for-size` and the glibc settings: peak RSS for a 1 GiB
//   session 116 MiB with these, 252 MiB without (V8 grows its young generation to 16 MiB
//   semi-spaces; glibc keeps one fragmented arena per thread-pool thread).
// `--optimize-for-size` is refused in NODE_OPTIONS, so the flags belong on the entrypoint's command
// line, not in the pod's env.
export const SIDECAR_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=1',
  '--optimize-for-size',
  '--liftoff-only',
];

export const SIDECAR_IMAGE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};
