// The core Key Vault journey with the unmodified JavaScript SDK, written as a user would write it.
//
// Zero-change mode (default): the vault is https://${KEY_VAULT_NAME}.vault.azure.net; `kluis env` sets
// HTTPS_PROXY (kluis's CONNECT proxy), NODE_EXTRA_CA_CERTS (kluis's CA) and AZURE_TENANT_ID/CLIENT_ID/
// CLIENT_SECRET, so nothing below knows about kluis.
// Direct mode (`node journey.mjs --direct`): the vault is $VAULT_URL (https://localhost:PORT), AZURE_AUTHORITY_HOST
// points at kluis with tenant "adfs", and the clients need disableChallengeResourceVerification.
//
// Prints one JSON line of results on success; exits 1 with the error on any failure.
import { constants, createHash, createPublicKey, randomBytes, verify as nodeVerify } from "node:crypto";
import { DefaultAzureCredential } from "@azure/identity";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";

const direct = process.argv.includes("--direct");
const vaultUrl = direct ? process.env.VAULT_URL : `https://${process.env.KEY_VAULT_NAME}.vault.azure.net`;
const clientOptions = direct ? { disableChallengeResourceVerification: true } : {};
const poll = { intervalInMs: 100 }; // the pollers' default is 2000 ms
const suffix = randomBytes(4).toString("hex");

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const sdkQuirks = {};

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function main() {
  const credential = new DefaultAzureCredential();
  const client = new KeyClient(vaultUrl, credential, clientOptions);
  const results = { vaultUrl };

  // Create and get.
  const rsaName = `js-rsa-${suffix}`;
  const ecName = `js-ec-${suffix}`;
  const rsa = await client.createRsaKey(rsaName, { keySize: 2048 });
  const ec = await client.createEcKey(ecName, { curve: "P-256" });
  check(rsa.keyType === "RSA" && rsa.key.n.length === 256, `RSA-2048 key, got ${rsa.keyType} n=${rsa.key.n?.length}`);
  check(ec.keyType === "EC" && ec.key.crv === "P-256" && ec.key.x.length === 32, `EC P-256 key, got ${ec.key.crv}`);
  check(rsa.id.startsWith(`${vaultUrl}/keys/${rsaName}/`), `kid ${rsa.id} under ${vaultUrl}`);
  const gotRsa = await client.getKey(rsaName);
  const gotEc = await client.getKey(ecName);
  check(gotRsa.id === rsa.id && gotEc.id === ec.id, "get returns the created versions");
  check(gotRsa.properties.recoveryLevel === "Recoverable+Purgeable", `recoveryLevel ${gotRsa.properties.recoveryLevel}`);
  results.created = { rsa: rsa.id, ec: ec.id };

  // List: all at once, then one key per page (the SDK follows nextLink).
  const listed = [];
  for await (const props of client.listPropertiesOfKeys()) listed.push(props.name);
  check(listed.includes(rsaName) && listed.includes(ecName), `list ${JSON.stringify(listed)} has both keys`);
  const paged = [];
  let pages = 0;
  for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 1 })) {
    pages += 1;
    check(page.length <= 1, `maxPageSize 1 gave a page of ${page.length}`);
    paged.push(...page.map((p) => p.name));
  }
  check(pages >= 2 && paged.includes(rsaName) && paged.includes(ecName), `${pages} pages of one key have both`);
  check(JSON.stringify([...paged].sort()) === JSON.stringify([...listed].sort()), "paging lists the same keys");
  results.listed = { keys: listed.length, pagesOfOne: pages };

  // Sign and verify: a SHA-256 digest (sign/verify) and raw data (signData/verifyData).
  const data = Buffer.from(`kluis journey ${suffix}`);
  const digest = createHash("sha256").update(data).digest();
  const signatures = {};
  for (const [key, algorithm] of [
    [rsa, "RS256"],
    [rsa, "PS256"],
    [ec, "ES256"],
  ]) {
    // From a KeyVaultKey (RSA: has the public key) or from a key id string (EC: the SDK GETs the key first).
    const crypto = new CryptographyClient(key.keyType === "EC" ? key.id : key, credential, clientOptions);
    const signed = await crypto.sign(algorithm, digest);
    check(signed.keyID === key.id && signed.algorithm === algorithm, `${algorithm} sign result ${signed.keyID}`);
    check((await crypto.verify(algorithm, digest, signed.result)).result, `${algorithm} verify(digest)`);
    const signedData = await crypto.signData(algorithm, data);
    const verifiedData = (await crypto.verifyData(algorithm, data, signedData.result)).result;
    if (algorithm === "PS256") {
      // SDK bug (@azure/keyvault-keys 4.10.2, rsaCryptographyProvider.js verifyData): a client built from an RSA
      // key verifies PS* data locally with node's createVerify and its default PKCS#1 v1.5 padding, so a valid
      // PSS signature always gives false. Record what the SDK said; prove the signature with PSS padding here.
      sdkQuirks.ps256LocalVerifyData = verifiedData;
      const publicKey = createPublicKey({ key: { kty: "RSA", n: b64url(key.key.n), e: b64url(key.key.e) }, format: "jwk" });
      const pss = { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
      check(nodeVerify("sha256", data, pss, signedData.result), "PS256 signData signature verifies with PSS padding");
    } else {
      check(verifiedData, `${algorithm} verifyData`);
    }
    const tampered = Buffer.from(signed.result);
    tampered[0] ^= 1;
    check(!(await crypto.verify(algorithm, digest, tampered)).result, `${algorithm} rejects a tampered signature`);
    signatures[algorithm] = { sign: signed.result.length, signData: signedData.result.length };
  }
  check(signatures.ES256.sign === 64, `ES256 signature is raw r||s (64 bytes), got ${signatures.ES256.sign}`);
  results.signatures = signatures;

  // Encrypt RSA-OAEP locally (a CryptographyClient built from the key has the public key), decrypt remotely.
  const rsaCrypto = new CryptographyClient(rsa, credential, clientOptions);
  const plaintext = Buffer.from(`secret ${suffix}`);
  const encrypted = await rsaCrypto.encrypt({ algorithm: "RSA-OAEP", plaintext });
  check(encrypted.result.length === 256, `RSA-OAEP ciphertext length ${encrypted.result.length}`);
  const decrypted = await rsaCrypto.decrypt({ algorithm: "RSA-OAEP", ciphertext: encrypted.result });
  check(Buffer.from(decrypted.result).equals(plaintext), "RSA-OAEP round trip");
  results.encryptDecrypt = "RSA-OAEP";

  // Delete, get deleted, recover, get again.
  const deletePoller = await client.beginDeleteKey(rsaName, poll);
  const deleted = await deletePoller.pollUntilDone();
  check(deleted.properties.recoveryId === `${vaultUrl}/deletedkeys/${rsaName}`, `recoveryId ${deleted.properties.recoveryId}`);
  check(deleted.properties.deletedOn instanceof Date, "deletedOn is a Date");
  const purgeDays = (deleted.properties.scheduledPurgeDate - deleted.properties.deletedOn) / 86400000;
  check(Math.round(purgeDays) === 90, `scheduled purge after ${purgeDays} days`);
  const gotDeleted = await client.getDeletedKey(rsaName);
  check(gotDeleted.name === rsaName && gotDeleted.id === rsa.id, `deleted key ${gotDeleted.id}`);
  const recoverPoller = await client.beginRecoverDeletedKey(rsaName, poll);
  const recovered = await recoverPoller.pollUntilDone();
  check(recovered.id === rsa.id, `recovered ${recovered.id}`);
  const again = await client.getKey(rsaName);
  check(again.id === rsa.id && Buffer.from(again.key.n).equals(Buffer.from(rsa.key.n)), "the recovered key is the same key");
  results.recovered = again.id;

  // Delete and purge the EC key: afterwards it is gone for good.
  await (await client.beginDeleteKey(ecName, poll)).pollUntilDone();
  await client.purgeDeletedKey(ecName);
  let status;
  try {
    await client.getDeletedKey(ecName);
  } catch (e) {
    status = e.statusCode;
  }
  check(status === 404, `deleted key after purge: ${status}`);
  results.purged = ecName;

  results.sdkQuirks = sdkQuirks;
  results.ok = true;
  return results;
}

main().then(
  (results) => {
    console.log(JSON.stringify(results));
  },
  (err) => {
    console.error(err?.stack ?? String(err));
    if (err?.statusCode) console.error(`status ${err.statusCode}: ${JSON.stringify(err.details ?? err.message)}`);
    process.exit(1);
  },
);
