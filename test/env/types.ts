// Connection facts of the real servers the test environment runs. Plain JSON, so the global setup
// can hand them to test files (each runs in its own process) through a file.

export interface KubeInfo {
  /** https://127.0.0.1:<port> of kube-apiserver. */
  server: string;
  /** A kubeconfig whose user is a client-cert admin in system:masters. */
  kubeconfigPath: string;
  /** PEM of the CA that signed the apiserver's serving cert and the client certs. */
  caPem: string;
  /** The service-account issuer; the apiserver serves its OIDC discovery and JWKS. */
  serviceAccountIssuer: string;
  /** Absolute paths of kubectl and helm binaries matching this apiserver. */
  kubectl: string;
  helm: string;
  /** Directory for the control plane's certs and data (removed on stop). */
  dataDir: string;
}

export interface MinioInfo {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A bucket created with Object Lock enabled (versioning on). */
  bucket: string;
}

export interface PostgresInfo {
  host: string;
  port: number;
  /** Superuser, authenticated with SCRAM-SHA-256 over TCP. */
  user: string;
  password: string;
  database: string;
  /** postgres://user:password@host:port/database */
  url: string;
  /** Directory with psql, pgbench, pg_ctl of the running server's major version. */
  binDir: string;
}

export interface SshdInfo {
  host: string;
  port: number;
  user: string;
  password: string;
  /** OpenSSH private key accepted for `user`. */
  privateKeyPath: string;
  /** known_hosts line(s) for [host]:port. */
  knownHostsPath: string;
  /** The user's home directory (sessions and sftp start there; owned by the user). */
  homeDir: string;
}

export interface OidcInfo {
  /** Issuer URL; /.well-known/openid-configuration and JWKS served under it. */
  issuer: string;
  /** A confidential client allowed the client_credentials grant. */
  clientId: string;
  clientSecret: string;
  /** The audience (resource indicator) its access tokens are JWTs for. */
  audience: string;
  tokenEndpoint: string;
}

/** The real node (node.ts), joined to the `kube` control plane. */
export interface NodeInfo {
  /** Node name (kubectl get nodes). */
  name: string;
  /** The node's address (the host's default-route interface, never loopback). */
  ip: string;
  podCidr: string;
  serviceCidr: string;
  /** Cluster DNS Service address (CoreDNS). */
  clusterDnsIp: string;
  /** host:port of the local OCI registry containerd pulls from (plain HTTP on 127.0.0.1). */
  registry: string;
  /** A small test image (busybox: sh, wget, nc, nslookup) in that registry. */
  testImage: string;
  /** Chaperone's images in that registry by name (sidecar, webhook, operator, cli, init); empty
   * when `make images` has not built them. */
  chaperoneImages: Record<string, string>;
  /** True when a NetworkPolicy enforcer (kube-router's policy controller) runs on the node. */
  networkPolicies: boolean;
  /** The sandbox (pause) image, built here and imported into containerd. */
  sandboxImage: string;
  /** containerd's socket (for `ctr --address`). */
  containerdAddress: string;
  /** Logs of containerd, kubelet, kube-proxy, kube-scheduler, CoreDNS and the registry. */
  logDir: string;
  dataDir: string;
  /** How long the node took to start (ms), the control plane excluded. */
  startupMs: number;
}

export type EnvPart = 'kube' | 'minio' | 'postgres' | 'sshd' | 'oidc' | 'node';

export interface TestEnvInfo {
  kube?: KubeInfo;
  minio?: MinioInfo;
  postgres?: PostgresInfo;
  sshd?: SshdInfo;
  oidc?: OidcInfo;
  node?: NodeInfo;
}
