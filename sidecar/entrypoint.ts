// What the sidecar's image runs: Node flags and environment that keep a long session's memory flat.
// Measured in docs/benchmarks.md (Recording pipeline): peak RSS for a 1 GiB session 116 MiB with
// these, 252 MiB without (V8 grows its young generation to 16 MiB semi-spaces; glibc keeps one
// fragmented arena per thread-pool thread). `--optimize-for-size` is refused in NODE_OPTIONS, so the
// flags belong on the entrypoint's command line, not in the pod's env.
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--optimize-for-size'];

export const SIDECAR_IMAGE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};
