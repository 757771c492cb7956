// Every secrets operation with the unmodified JavaScript SDK (@azure/keyvault-secrets), written as a user would.
//
// Zero-change mode (default): the vault is https://${KEY_VAULT_NAME}.vault.azure.net; `kluis env` sets
// HTTPS_PROXY, NODE_EXTRA_CA_CERTS and AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET, so nothing here knows about kluis.
// Direct mode (`node secrets.mjs --direct`): the vault is $VAULT_URL, with disableChallengeResourceVerification.
//
// Prints one JSON line of results on success; exits 1 with the error on any failure.
import { randomBytes } from "node:crypto";
import { DefaultAzureCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";

const direct = process.argv.includes("--direct");
const vaultUrl = direct ? process.env.VAULT_URL : `https://${process.env.KEY_VAULT_NAME}.vault.azure.net`;
const clientOptions = direct ? { disableChallengeResourceVerification: true } : {};
const poll = { intervalInMs: 100 };
const suffix = randomBytes(4).toString("hex");

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    const error = e.details?.error;
    return { status: e.statusCode, code: e.code, message: error?.message ?? e.message,
             inner: error?.innerError?.code ?? error?.innererror?.code };
  }
  throw new Error("check failed: the call was expected to fail");
}

async function main() {
  const client = new SecretClient(vaultUrl, new DefaultAzureCredential(), clientOptions);
  const results = { vaultUrl };
  const name = `js-secret-${suffix}`;
  const unicode = "wachtwoord ☃ 日本語 🙂";

  // Set (two versions), get latest and by version.
  const v1 = await client.setSecret(name, "first", { contentType: "text/plain", tags: { env: "js" } });
  // A date before 2038: @azure/keyvault-secrets 4.12.0 serializes times as `(ms / 1000) | 0`, a 32-bit
  // integer, so later dates are sent as negative numbers (models.js secretAttributesSerializer).
  const v2 = await client.setSecret(name, unicode, { expiresOn: new Date("2037-01-01T00:00:00Z") });
  check(v1.properties.version !== v2.properties.version, "each set makes a new version");
  check(v1.properties.contentType === "text/plain" && v1.properties.tags?.env === "js", `contentType and tags: ${JSON.stringify(v1.properties)}`);
  const latest = await client.getSecret(name);
  check(latest.value === unicode && latest.properties.version === v2.properties.version, `latest ${latest.value}`);
  check(latest.properties.expiresOn.toISOString() === "2037-01-01T00:00:00.000Z", "expiresOn round-trips");
  const first = await client.getSecret(name, { version: v1.properties.version });
  check(first.value === "first", `version 1 value ${first.value}`);
  results.set = { id: latest.properties.id, unicode: latest.value === unicode };
  check((await client.setSecret(`${name}-empty`, "")).value === "", "an empty value is allowed");

  // Lists: no values; pages of one; versions of a name that never existed is empty.
  const names = [];
  for await (const p of client.listPropertiesOfSecrets()) {
    check(!("value" in p) || p.value === undefined, "list items carry no value");
    names.push(p.name);
  }
  check(names.includes(name) && names.includes(`${name}-empty`), `list ${JSON.stringify(names)}`);
  let pages = 0;
  for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 1 })) {
    pages += 1;
    check(page.length <= 1, `page of ${page.length}`);
  }
  const versions = [];
  for await (const p of client.listPropertiesOfSecretVersions(name)) versions.push(p.version);
  check(versions.length === 2, `two versions, got ${versions.length}`);
  const none = [];
  for await (const p of client.listPropertiesOfSecretVersions(`never-${suffix}`)) none.push(p);
  check(none.length === 0, "versions of a name that never existed: empty");
  results.listed = { pagesOfOne: pages, versions: versions.length };

  // Update (PATCH): disable; the value is refused while disabled; what was not given stays.
  const updated = await client.updateSecretProperties(name, v1.properties.version, { enabled: false });
  check(updated.enabled === false && updated.contentType === "text/plain" && updated.tags.env === "js", "PATCH");
  const disabled = await failure(client.getSecret(name, { version: v1.properties.version }));
  check(disabled.status === 403 && disabled.inner === "SecretDisabled", `disabled: ${JSON.stringify(disabled)}`);
  results.disabled = disabled;
  const tooLong = await failure(client.setSecret(`${name}-big`, "x".repeat(25601)));
  check(tooLong.status === 400 && tooLong.inner === "SecretTooLarge", `too long: ${JSON.stringify(tooLong)}`);
  results.tooLong = tooLong;

  // Backup, delete, Conflict on a deleted name, recover, delete + purge, restore.
  const backup = await client.backupSecret(name);
  check(backup instanceof Uint8Array && backup.length > 0, "backup blob");
  const deleted = await (await client.beginDeleteSecret(name, poll)).pollUntilDone();
  check(deleted.properties.recoveryId === `${vaultUrl}/deletedsecrets/${name}`, `recoveryId ${deleted.properties.recoveryId}`);
  const conflict = await failure(client.setSecret(name, "again"));
  check(conflict.status === 409 && conflict.inner === "ObjectIsDeletedButRecoverable", JSON.stringify(conflict));
  results.conflict = conflict;
  const gotDeleted = await client.getDeletedSecret(name);
  check(gotDeleted.name === name, "getDeletedSecret");
  const listedDeleted = [];
  for await (const d of client.listDeletedSecrets()) listedDeleted.push(d.name);
  check(listedDeleted.includes(name), "listDeletedSecrets");
  await (await client.beginRecoverDeletedSecret(name, poll)).pollUntilDone();
  check((await client.getSecret(name)).value === unicode, "recovered value");
  await (await client.beginDeleteSecret(name, poll)).pollUntilDone();
  await client.purgeDeletedSecret(name);
  const gone = await failure(client.getDeletedSecret(name));
  check(gone.status === 404, `purged: ${gone.status}`);
  const restored = await client.restoreSecretBackup(backup);
  check(restored.name === name && restored.version === v2.properties.version, "restore keeps the versions");
  check((await client.getSecret(name)).value === unicode, "restored value");
  const restoreConflict = await failure(client.restoreSecretBackup(backup));
  check(restoreConflict.status === 409, `restore over an existing name: ${restoreConflict.status}`);
  results.restored = restored.id;

  results.ok = true;
  return results;
}

main().then(
  (results) => console.log(JSON.stringify(results)),
  (err) => {
    console.error(err?.stack ?? String(err));
    if (err?.statusCode) console.error(`status ${err.statusCode}: ${JSON.stringify(err.details ?? err.message)}`);
    process.exit(1);
  },
);
