// HAR 1.2 as the spec writes it (http://www.softwareishard.com/blog/har-12-spec/), required fields
// and types, strict about unknown fields except the custom ones the spec allows ("_" prefix).
import { z } from 'zod';

const custom = <T extends z.ZodRawShape>(shape: T) =>
  z
    .strictObject(shape)
    .catchall(z.unknown())
    .superRefine((o, ctx) => {
      for (const k of Object.keys(o))
        if (!(k in shape) && !k.startsWith('_'))
          ctx.addIssue({
            code: 'custom',
            message: `unknown field ${k} (custom fields start with _)`,
            path: [k],
          });
    });

const nameValue = custom({ name: z.string(), value: z.string(), comment: z.string().optional() });
const cookie = custom({
  name: z.string(),
  value: z.string(),
  path: z.string().optional(),
  domain: z.string().optional(),
  expires: z.string().optional(),
  httpOnly: z.boolean().optional(),
  secure: z.boolean().optional(),
  comment: z.string().optional(),
});
const isoDate = z
  .string()
  .refine((s) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s), 'ISO 8601 date');

export const harSchema = custom({
  log: custom({
    version: z.literal('1.2'),
    creator: custom({ name: z.string(), version: z.string(), comment: z.string().optional() }),
    browser: z.unknown().optional(),
    pages: z.array(z.unknown()).optional(),
    comment: z.string().optional(),
    entries: z.array(
      custom({
        pageref: z.string().optional(),
        startedDateTime: isoDate,
        time: z.number().min(0),
        request: custom({
          method: z.string().min(1),
          url: z.url(),
          httpVersion: z.string(),
          cookies: z.array(cookie),
          headers: z.array(nameValue),
          queryString: z.array(nameValue),
          postData: custom({
            mimeType: z.string(),
            params: z.array(z.unknown()).optional(),
            text: z.string().optional(),
            comment: z.string().optional(),
          }).optional(),
          headersSize: z.number().int(),
          bodySize: z.number().int(),
          comment: z.string().optional(),
        }),
        response: custom({
          status: z.number().int(),
          statusText: z.string(),
          httpVersion: z.string(),
          cookies: z.array(cookie),
          headers: z.array(nameValue),
          content: custom({
            size: z.number().int(),
            compression: z.number().int().optional(),
            mimeType: z.string(),
            text: z.string().optional(),
            encoding: z.string().optional(),
            comment: z.string().optional(),
          }),
          redirectURL: z.string(),
          headersSize: z.number().int(),
          bodySize: z.number().int(),
          comment: z.string().optional(),
        }),
        cache: custom({
          beforeRequest: z.unknown().optional(),
          afterRequest: z.unknown().optional(),
          comment: z.string().optional(),
        }),
        timings: custom({
          blocked: z.number().optional(),
          dns: z.number().optional(),
          connect: z.number().optional(),
          send: z.number(),
          wait: z.number(),
          receive: z.number(),
          ssl: z.number().optional(),
          comment: z.string().optional(),
        }),
        serverIPAddress: z.string().optional(),
        connection: z.string().optional(),
        comment: z.string().optional(),
      }),
    ),
  }),
});
