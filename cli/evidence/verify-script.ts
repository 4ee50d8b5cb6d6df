// What an evidence bundle tells a third party: VERIFY.md, whose shell block is also shipped as
// verify.sh. It checks the bundle with sha256sum and openssl (plus sed, grep, tr, tail and cut),
// from the documented format alone: no Chaperone code is needed or trusted.

/** POSIX shell; run from the unzipped bundle's folder. Exits non-zero at the first failed check. */
export const VERIFY_SCRIPT = `#!/bin/sh
# Checks a Chaperone evidence bundle with sha256sum and openssl (and sed, grep, tr, tail, cut).
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# The value of a top-level field of a one-line JSON document ("quotes" removed).
field() { sed -n "s/.*\\"$1\\":\\"\\{0,1\\}\\([^,\\"}]*\\).*/\\1/p" "$2"; }

# 1. Every file is as packed (transport check; SHA256SUMS itself is not signed).
sha256sum -c --quiet --strict SHA256SUMS || fail "a file differs from SHA256SUMS"

# 2. Each public key file is named by its fingerprint: SHA-256 of the raw 32-byte Ed25519 key.
for key in keys/*.pem; do
  fp=$(openssl pkey -pubin -in "$key" -outform DER | tail -c 32 | sha256sum | cut -d' ' -f1)
  [ "keys/$fp.pem" = "$key" ] || fail "$key: fingerprint is $fp"
  echo "key $fp"
done

# 3. A signed document (manifest or index object, one line of canonical JSON): the signature
#    covers the same line without its "signature" member.
check_signature() {
  key="keys/$(field keyFingerprint "$1").pem"
  [ -f "$key" ] || fail "$1: signed by a key that is not in keys/"
  sed -n 's/.*"signature":"\\([^"]*\\)".*/\\1/p' "$1" | openssl base64 -d -A > "$tmp/sig"
  sed 's/,"signature":"[^"]*"//' "$1" | tr -d '\\n' > "$tmp/body"
  openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$tmp/body" -sigfile "$tmp/sig" \\
    > /dev/null 2>&1 || fail "$1: signature does not verify"
}

# 4. Each session: every manifest signed, numbered 1..n without a hole, each segment's SHA-256 as
#    its manifest says, each manifest naming the previous segment's SHA-256 (the chain), and the
#    session's signed index object agreeing on the count and the last segment once it has ended.
sessions=0
for dir in store/sessions/date=*/namespace=*/session=*; do
  [ -d "$dir" ] || continue
  id=\${dir##*session=}
  n=0
  prev=null
  final=false
  for seg in "$dir"/seg-*.zst; do
    [ -f "\${seg%.zst}.manifest.json" ] || fail "$seg has no manifest"
  done
  for m in "$dir"/seg-*.manifest.json; do
    [ -f "$m" ] || fail "$dir: no segments"
    n=$((n + 1))
    check_signature "$m"
    [ "$(field sessionId "$m")" = "$id" ] || fail "$m: belongs to another session"
    [ "$(field index "$m")" = "$n" ] || fail "$m: segment $n is missing"
    [ "$(field prevSha256 "$m")" = "$prev" ] || fail "$m: does not follow segment $((n - 1))"
    seg=\${m%.manifest.json}.zst
    [ -f "$seg" ] || fail "$seg is missing"
    sum=$(sha256sum < "$seg" | cut -d' ' -f1)
    [ "$sum" = "$(field sha256 "$m")" ] || fail "$seg: SHA-256 differs from its signed manifest"
    prev=$sum
    final=$(field final "$m")
  done
  # The signed index object of an ended session names its last segment: a cut tail shows.
  status=open
  for idx in store/index/date=*/namespace=*/"$id".json; do
    [ -f "$idx" ] || fail "session $id has no index object"
    check_signature "$idx"
    [ "$(field sessionId "$idx")" = "$id" ] || fail "$idx: belongs to another session"
    status=$(field status "$idx")
    if [ "$status" != open ]; then
      [ "$(field segments "$idx")" = "$n" ] || fail "$idx: the index says $(field segments "$idx") segments, found $n"
      [ "$(field lastSegmentSha256 "$idx")" = "$prev" ] || fail "$idx: the last segment is not the one the index names"
      [ "$final" = true ] || fail "$dir: the session $status but its last segment is not final"
    fi
  done
  echo "OK session $id: $n segments, chain intact, status: $status"
  sessions=$((sessions + 1))
done

[ "$sessions" -gt 0 ] || fail "no sessions in this bundle"
echo "bundle verified: $sessions sessions; compare the key fingerprints above with the ones the recording organisation published"
`;

export function verifyMarkdown(): string {
  return `# Verifying this evidence bundle

This bundle holds recordings exactly as Chaperone stored them, the public keys that signed them,
and \`bundle.json\` (what is included and why). You can check it without Chaperone's code, with
\`sha256sum\` and \`openssl\` (OpenSSL 3, for Ed25519 with \`-rawin\`) and the usual \`sed\`,
\`grep\`, \`tr\`, \`tail\` and \`cut\`.

## What is in it

- \`store/sessions/date=…/namespace=…/session=<id>/seg-NNNNNN.zst\`: the recorded events, one zstd
  frame of JSON Lines per segment (\`zstd -dc\` prints them).
- \`store/sessions/…/seg-NNNNNN.manifest.json\`: one signed manifest per segment. It holds the
  segment's \`sha256\`, its place (\`index\`, 1-based), the previous segment's SHA-256
  (\`prevSha256\`, \`null\` for the first) and \`final\` (true on the last segment of an ended
  session).
- \`store/index/date=…/namespace=…/<id>.json\`: the signed index object of each session.
- \`keys/<fingerprint>.pem\`: the Ed25519 public keys (SPKI PEM). A fingerprint is the SHA-256 of
  the raw 32-byte public key, which is the last 32 bytes of the DER form.
- \`bundle.json\`: who made the bundle, when, from which store, why each session is included and
  what \`chaperone verify\` said about it then. Not signed: it is a description, not evidence.
- \`SHA256SUMS\`: the SHA-256 of every other file (a transport check, not signed).

## How a signature is checked

Manifests and index objects are one line of canonical JSON (keys sorted, no whitespace, RFC 8785)
followed by a newline. The Ed25519 signature (\`signature\`, base64) covers that line **without**
its \`"signature":"…"\` member and without the newline. So: remove \`,"signature":"…"\` and the
newline, decode the base64 signature, and run \`openssl pkeyutl -verify -rawin\` with the key named
by \`keyFingerprint\`.

## The commands

Run them from the folder the bundle was unzipped into (\`verify.sh\` holds the same text). Each
check prints \`FAIL: …\` and stops at the first problem; success ends with \`bundle verified\`.

\`\`\`sh
${VERIFY_SCRIPT}\`\`\`

Then make sure the fingerprints printed as \`key …\` are the recording organisation's signing keys,
obtained through a channel other than this bundle: a bundle signed by a key you were not told
about proves nothing.
`;
}
