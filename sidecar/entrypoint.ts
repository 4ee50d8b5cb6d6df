// What the sidecar's image runs: Node flags and environment that keep the sidecar's memory flat
// without paying for it in CPU. Measured in docs/benchmarks.md (Hot path budget, Recording pipeline):
// - `--max-semi-space-size=4`: V8's young generation stops at 4 MiB semi-spaces instead of growing
//   to 16 MiB. With 1 MiB and `--optimize-for-size` (the earlier flags) the sidecar scavenged about
//   every 170 transactions and spent half as much CPU again per transaction (select-only, 16 clients:
//   110 against 74 µs, median of 4 interleaved rounds); 8 and 16 MiB were no faster than 4 and took
//   more memory. A 1 GiB recorded session peaks at 137 MiB (flat) with these flags and the env below.
// - the glibc settings: without them glibc keeps one fragmented arena per thread-pool thread.
// `--optimize-for-size` is no longer used (and it is refused in NODE_OPTIONS): flags belong on the
// entrypoint's command line, not in the pod's env.
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

export const SIDECAR_IMAGE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};
