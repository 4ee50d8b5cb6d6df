// Pods of the test image (busybox) on the real node (test/env/node.ts), as the node's tests make
// them: each tolerates the node's taint (NODE_TAINT), which keeps other tests' pods off the node.
import { NODE_TOLERATION } from '../../env/node.ts';

export interface HttpdPodOptions {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  /** The node's test image (`node.testImage`). */
  image: string;
  /** What the server answers for /index.html (one word: it goes through `sh -c echo`). */
  page: string;
  /** The container's name (default `httpd`). */
  container?: string;
  /** Declare containerPort 8080 (a Service or port-forward names it). */
  declarePort?: boolean;
  terminationGracePeriodSeconds?: number;
}

/** busybox httpd serving `page` on port 8080, Ready once the port accepts connections. */
export function httpdPod(o: HttpdPodOptions) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name,
      ...(o.namespace ? { namespace: o.namespace } : {}),
      ...(o.labels ? { labels: o.labels } : {}),
    },
    spec: {
      tolerations: [NODE_TOLERATION],
      ...(o.terminationGracePeriodSeconds !== undefined
        ? { terminationGracePeriodSeconds: o.terminationGracePeriodSeconds }
        : {}),
      containers: [
        {
          name: o.container ?? 'httpd',
          image: o.image,
          command: [
            'sh',
            '-c',
            `mkdir -p /tmp/www && echo ${o.page} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`,
          ],
          ...(o.declarePort ? { ports: [{ containerPort: 8080 }] } : {}),
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
        },
      ],
    },
  };
}
