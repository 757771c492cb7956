// The core Key Vault journey with the unmodified Azure SDK for Java (azure-security-keyvault-keys +
// azure-identity), written as a user would write it: DefaultAzureCredential and
// https://${KEY_VAULT_NAME}.vault.azure.net.
//
// Nothing below knows about kluis. `kluis env` sets HTTPS_PROXY (azure-core's HTTP client reads it),
// JAVA_TOOL_OPTIONS (-Djavax.net.ssl.trustStore: a PKCS#12 store with the usual roots plus the kluis
// CA, read by every JVM at start) and AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET (EnvironmentCredential).
//
// Prints one JSON line of results on success; exits 1 with the error on any failure.
package kluis;

import com.azure.core.credential.TokenCredential;
import com.azure.core.exception.HttpResponseException;
import com.azure.core.exception.ResourceNotFoundException;
import com.azure.core.http.rest.PagedResponse;
import com.azure.core.util.polling.SyncPoller;
import com.azure.identity.DefaultAzureCredentialBuilder;
import com.azure.security.keyvault.keys.KeyClient;
import com.azure.security.keyvault.keys.KeyClientBuilder;
import com.azure.security.keyvault.keys.cryptography.CryptographyClient;
import com.azure.security.keyvault.keys.cryptography.CryptographyClientBuilder;
import com.azure.security.keyvault.keys.cryptography.models.KeyWrapAlgorithm;
import com.azure.security.keyvault.keys.cryptography.models.SignResult;
import com.azure.security.keyvault.keys.cryptography.models.SignatureAlgorithm;
import com.azure.security.keyvault.keys.cryptography.models.WrapResult;
import com.azure.security.keyvault.keys.models.CreateEcKeyOptions;
import com.azure.security.keyvault.keys.models.CreateRsaKeyOptions;
import com.azure.security.keyvault.keys.models.DeletedKey;
import com.azure.security.keyvault.keys.models.KeyCurveName;
import com.azure.security.keyvault.keys.models.KeyProperties;
import com.azure.security.keyvault.keys.models.KeyType;
import com.azure.security.keyvault.keys.models.KeyVaultKey;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Collectors;

public final class Journey {
    // One more than a page of Key Vault's list results (25), so listing versions takes two pages.
    private static final int EC_VERSIONS = 26;
    private static final Duration POLL = Duration.ofMillis(100); // the pollers' default is 1 s

    private Journey() {}

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalStateException("check failed: " + message);
        }
    }

    private static Map<String, Object> run() throws Exception {
        String vaultUrl = "https://" + System.getenv("KEY_VAULT_NAME") + ".vault.azure.net";
        TokenCredential credential = new DefaultAzureCredentialBuilder().build();
        KeyClient client = new KeyClientBuilder().vaultUrl(vaultUrl).credential(credential).buildClient();
        byte[] random = new byte[4];
        new SecureRandom().nextBytes(random);
        String suffix = HexFormat.of().formatHex(random);
        String rsaName = "java-rsa-" + suffix;
        String ecName = "java-ec-" + suffix;
        Map<String, Object> results = new LinkedHashMap<>();
        results.put("vaultUrl", vaultUrl);

        // Create RSA-2048 and EC P-256 keys; the EC key gets EC_VERSIONS versions.
        KeyVaultKey rsa = client.createRsaKey(new CreateRsaKeyOptions(rsaName).setKeySize(2048));
        check(rsa.getKeyType() == KeyType.RSA && rsa.getKey().getN().length == 256, "RSA-2048 key");
        check(rsa.getId().startsWith(vaultUrl + "/keys/" + rsaName + "/"), "kid " + rsa.getId() + " under " + vaultUrl);
        KeyVaultKey ec = null;
        for (int i = 0; i < EC_VERSIONS; i++) {
            ec = client.createEcKey(new CreateEcKeyOptions(ecName).setCurveName(KeyCurveName.P_256));
        }
        check(ec.getKey().getCurveName() == KeyCurveName.P_256 && ec.getKey().getX().length == 32, "EC P-256 key");
        results.put("created", Map.of("rsa", rsa.getId(), "ec", ec.getId()));

        // Get: the latest version, and a version by name.
        KeyVaultKey gotRsa = client.getKey(rsaName);
        KeyVaultKey gotEc = client.getKey(ecName, ec.getProperties().getVersion());
        check(gotRsa.getId().equals(rsa.getId()) && gotEc.getId().equals(ec.getId()), "get returns the created versions");
        check("Recoverable+Purgeable".equals(gotRsa.getProperties().getRecoveryLevel()),
            "recovery level " + gotRsa.getProperties().getRecoveryLevel());

        // List keys (all pages), then the EC key's versions, which take more than one page.
        TreeSet<String> names = new TreeSet<>();
        for (KeyProperties props : client.listPropertiesOfKeys()) {
            names.add(props.getName());
        }
        check(names.contains(rsaName) && names.contains(ecName), "list has both keys: " + names);
        int versions = 0;
        int versionPages = 0;
        for (PagedResponse<KeyProperties> page : client.listPropertiesOfKeyVersions(ecName).iterableByPage()) {
            versionPages++;
            versions += page.getValue().size();
        }
        check(versions == EC_VERSIONS && versionPages >= 2, versions + " versions in " + versionPages + " pages");
        results.put("listed", Map.of("keys", names.size(), "versions", versions, "versionPages", versionPages));

        // Sign a SHA-256 digest in the vault; verify it (the SDK verifies locally when it has the public key).
        byte[] digest = MessageDigest.getInstance("SHA-256")
            .digest(("kluis java journey " + suffix).getBytes(StandardCharsets.UTF_8));
        Map<String, Object> signatures = new LinkedHashMap<>();
        Object[][] cases = {{rsa, SignatureAlgorithm.RS256}, {rsa, SignatureAlgorithm.PS256}, {ec, SignatureAlgorithm.ES256}};
        for (Object[] c : cases) {
            KeyVaultKey key = (KeyVaultKey) c[0];
            SignatureAlgorithm algorithm = (SignatureAlgorithm) c[1];
            CryptographyClient crypto = new CryptographyClientBuilder()
                .keyIdentifier(key.getId()).credential(credential).buildClient();
            SignResult signed = crypto.sign(algorithm, digest);
            check(signed.getKeyId().equals(key.getId()), algorithm + " signed by " + signed.getKeyId());
            check(crypto.verify(algorithm, digest, signed.getSignature()).isValid(), algorithm + " verify");
            byte[] tampered = signed.getSignature().clone();
            tampered[0] ^= 1;
            check(!crypto.verify(algorithm, digest, tampered).isValid(), algorithm + " rejects a tampered signature");
            signatures.put(algorithm.toString(), signed.getSignature().length);
        }
        check(signatures.get("ES256").equals(64), "ES256 signature is raw r||s (64 bytes): " + signatures);
        results.put("signatures", signatures);

        // Wrap a 256-bit content key with RSA-OAEP-256 and unwrap it in the vault.
        byte[] cek = new byte[32];
        new SecureRandom().nextBytes(cek);
        CryptographyClient rsaCrypto = client.getCryptographyClient(rsaName, rsa.getProperties().getVersion());
        WrapResult wrapped = rsaCrypto.wrapKey(KeyWrapAlgorithm.RSA_OAEP_256, cek);
        check(wrapped.getEncryptedKey().length == 256, "wrapped " + wrapped.getEncryptedKey().length + " bytes");
        byte[] unwrapped = rsaCrypto.unwrapKey(KeyWrapAlgorithm.RSA_OAEP_256, wrapped.getEncryptedKey()).getKey();
        check(Arrays.equals(unwrapped, cek), "RSA-OAEP-256 unwrap returns the content key");
        results.put("wrapUnwrap", "RSA-OAEP-256");

        // Delete, get the deleted key, recover, get again.
        SyncPoller<DeletedKey, Void> deleting = client.beginDeleteKey(rsaName).setPollInterval(POLL);
        DeletedKey deleted = deleting.waitForCompletion().getValue();
        check((vaultUrl + "/deletedkeys/" + rsaName).equals(deleted.getRecoveryId()), "recoveryId " + deleted.getRecoveryId());
        long days = Duration.between(deleted.getDeletedOn(), deleted.getScheduledPurgeDate()).toDays();
        check(days == 90, "scheduled purge after " + days + " days");
        check(client.getDeletedKey(rsaName).getId().equals(rsa.getId()), "the deleted key is the created one");
        int conflict = 0;
        try {
            client.createRsaKey(new CreateRsaKeyOptions(rsaName));
        } catch (HttpResponseException e) {
            conflict = e.getResponse().getStatusCode();
        }
        check(conflict == 409, "create over a deleted key: " + conflict);
        SyncPoller<KeyVaultKey, Void> recovering = client.beginRecoverDeletedKey(rsaName).setPollInterval(POLL);
        KeyVaultKey recovered = recovering.waitForCompletion().getValue();
        check(recovered.getId().equals(rsa.getId()), "recovered " + recovered.getId());
        KeyVaultKey again = client.getKey(rsaName);
        check(Arrays.equals(again.getKey().getN(), rsa.getKey().getN()), "the recovered key is the same key");
        results.put("recovered", again.getId());

        // Delete and purge the EC key: afterwards it is gone for good.
        client.beginDeleteKey(ecName).setPollInterval(POLL).waitForCompletion();
        client.purgeDeletedKey(ecName);
        int status = 0;
        try {
            client.getDeletedKey(ecName);
        } catch (ResourceNotFoundException e) {
            status = e.getResponse().getStatusCode();
        }
        check(status == 404, "deleted key after purge: " + status);
        results.put("purged", ecName);
        results.put("ok", true);
        return results;
    }

    private static String json(Object value) {
        if (value instanceof Map<?, ?>) {
            return ((Map<?, ?>) value).entrySet().stream()
                .map(e -> json(e.getKey().toString()) + ":" + json(e.getValue()))
                .collect(Collectors.joining(",", "{", "}"));
        }
        if (value instanceof String) {
            return "\"" + ((String) value).replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
        }
        return String.valueOf(value);
    }

    public static void main(String[] args) {
        try {
            System.out.println(json(run()));
            System.exit(0); // reactor-netty's threads would keep the JVM alive a little longer
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
    }
}
