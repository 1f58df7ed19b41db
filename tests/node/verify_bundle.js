// Verifies a sigstore bundle (as `portcullis sign --form bundle` attaches
// it) with sigstore-js, an implementation independent of Portcullis.
// Usage: node verify_bundle.js BUNDLE.json PUBLIC_KEY.pem sha256:IMAGE_DIGEST
// Exit 0 verified, 1 not. Key-based bundles carry no transparency-log
// entry or timestamp, so those thresholds are 0 (as `cosign verify
// --key --insecure-ignore-tlog` accepts them).
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { toSignedEntity, toTrustMaterial, Verifier } = require('@sigstore/verify');

const [bundlePath, keyPath, digest] = process.argv.slice(2);
try {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath));
  const hint = crypto.createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  const root = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [],
  };
  const keys = (h) => {
    if (h !== hint) throw new Error(`bundle names key ${h}, not ${hint}`);
    return { publicKey, validFor: () => true };
  };
  const verifier = new Verifier(toTrustMaterial(root, keys), {
    tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0,
  });
  verifier.verify(toSignedEntity(bundle));
  const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
  const [alg, hex] = digest.split(':');
  if (!statement.subject.some((s) => s.digest && s.digest[alg] === hex)) {
    throw new Error(`the statement does not name ${digest}`);
  }
  console.log(`verified ${digest} (${statement.predicateType})`);
} catch (e) {
  console.log(`not verified: ${e.message}`);
  process.exit(1);
}
