// What the sidecar's image runs: Node flags and environment that keep the sidecar's memory flat
// without paying for it in CPU. Measured in docs/benchmarks.md ("The sidecar's memory", "Hot path
// budget", "Recording pipeline"):
// - `--liftoff-only`: the SQL guard's parser is libpg_query compiled to WebAssembly. By default V8
//   recompiles its hot functions (the parser's one huge function) with TurboFan in the background,
//   and that compilation alone takes 500-600 MiB of anonymous memory for about a second: the sidecar
//   peaked at 703 MiB (RSS) in its first three sessions and was OOM-killed under a 512Mi limit.
//   Liftoff, V8's baseline WebAssembly compiler, parses statements of this size as fast (42 vs 52 µs
//   per statement) and the peak stays near 100 MiB. Only WebAssembly is affected, not JavaScript.
// - `--max-semi-space-size=4`: V8's young generation stops at 4 MiB semi-spaces instead of growing
//   to 16 MiB. With 1 MiB and `--optimize-for-size` (the earlier flags) the sidecar scavenged about
//   every 170 transactions and spent half as much CPU again per transaction (select-only, 16 clients:
//   110 against 74 µs, median of 4 interleaved rounds); 8 and 16 MiB were no faster than 4 and took
//   more memory. A 1 GiB recorded session peaks at 137 MiB (flat) with these flags and the env below.
// - the glibc settings: without them glibc keeps one fragmented arena per thread-pool thread.
// Flags belong on the entrypoint's command line, not in the pod's env (NODE_OPTIONS refuses some).
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--liftoff-only'];

export const SIDECAR_IMAGE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};
