// The core Key Vault journey with the unmodified Azure SDK for Go (azkeys + azidentity), written as a
// user would write it: DefaultAzureCredential and https://${KEY_VAULT_NAME}.vault.azure.net.
//
// Nothing below knows about kluis. `kluis env` sets HTTPS_PROXY (net/http's ProxyFromEnvironment sends
// the TLS connection through kluis's CONNECT proxy), SSL_CERT_FILE (crypto/x509 reads the system roots
// from it, and it holds the kluis CA) and AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET (EnvironmentCredential).
//
// `journey versionless` runs only the wrap/unwrap of a key addressed without a version.
// Prints one JSON line of results on success; exits 1 with the error on any failure.
package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// ecVersions is one more than a page of Key Vault's list results (25), so listing versions takes two pages.
const ecVersions = 26

func check(ok bool, format string, args ...any) {
	if !ok {
		panic(fmt.Errorf("check failed: "+format, args...))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func run(ctx context.Context) map[string]any {
	vaultURL := fmt.Sprintf("https://%s.vault.azure.net", os.Getenv("KEY_VAULT_NAME"))
	cred := must(azidentity.NewDefaultAzureCredential(nil))
	client := must(azkeys.NewClient(vaultURL, cred, nil))
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	rsaName, ecName := "go-rsa-"+hex.EncodeToString(suffix), "go-ec-"+hex.EncodeToString(suffix)
	results := map[string]any{"vaultUrl": vaultURL}

	// Create RSA-2048 and EC P-256 keys; the EC key gets ecVersions versions.
	rsaKey := must(client.CreateKey(ctx, rsaName, azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048)),
	}, nil))
	check(*rsaKey.Key.Kty == azkeys.KeyTypeRSA && len(rsaKey.Key.N) == 256, "RSA-2048 key, got n of %d bytes", len(rsaKey.Key.N))
	check(strings.HasPrefix(string(*rsaKey.Key.KID), vaultURL+"/keys/"+rsaName+"/"), "kid %s under %s", *rsaKey.Key.KID, vaultURL)
	var ecKey azkeys.CreateKeyResponse
	for i := 0; i < ecVersions; i++ {
		ecKey = must(client.CreateKey(ctx, ecName, azkeys.CreateKeyParameters{
			Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256),
		}, nil))
	}
	check(*ecKey.Key.Crv == azkeys.CurveNameP256 && len(ecKey.Key.X) == 32, "EC P-256 key, got %v", *ecKey.Key.Crv)
	results["created"] = map[string]string{"rsa": string(*rsaKey.Key.KID), "ec": string(*ecKey.Key.KID)}

	// Get: the latest version, and a version by name.
	gotRSA := must(client.GetKey(ctx, rsaName, "", nil))
	gotEC := must(client.GetKey(ctx, ecName, ecKey.Key.KID.Version(), nil))
	check(*gotRSA.Key.KID == *rsaKey.Key.KID && *gotEC.Key.KID == *ecKey.Key.KID, "get returns the created versions")
	check(*gotRSA.Attributes.RecoveryLevel == "Recoverable+Purgeable", "recovery level %s", *gotRSA.Attributes.RecoveryLevel)

	// List keys (all pages), then the EC key's versions, which take more than one page.
	names := map[string]bool{}
	keyPages := 0
	for pager := client.NewListKeyPropertiesPager(nil); pager.More(); {
		page := must(pager.NextPage(ctx))
		keyPages++
		for _, props := range page.Value {
			names[props.KID.Name()] = true
		}
	}
	check(names[rsaName] && names[ecName], "list has both keys: %v", names)
	versions, versionPages := 0, 0
	for pager := client.NewListKeyPropertiesVersionsPager(ecName, nil); pager.More(); {
		page := must(pager.NextPage(ctx))
		versionPages++
		versions += len(page.Value)
	}
	check(versions == ecVersions && versionPages >= 2, "%d versions in %d pages", versions, versionPages)
	results["listed"] = map[string]int{"keys": len(names), "versions": versions, "versionPages": versionPages}

	// Sign a SHA-256 digest in the vault; verify it in the vault and locally with the public key.
	digest := sha256.Sum256([]byte("kluis go journey " + rsaName))
	rsaPub := &rsa.PublicKey{N: new(big.Int).SetBytes(rsaKey.Key.N), E: int(new(big.Int).SetBytes(rsaKey.Key.E).Int64())}
	ecPub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(ecKey.Key.X), Y: new(big.Int).SetBytes(ecKey.Key.Y)}
	signatures := map[string]int{}
	for _, c := range []struct {
		name string
		alg  azkeys.SignatureAlgorithm
		key  *azkeys.ID
	}{{rsaName, azkeys.SignatureAlgorithmRS256, rsaKey.Key.KID}, {rsaName, azkeys.SignatureAlgorithmPS256, rsaKey.Key.KID},
		{ecName, azkeys.SignatureAlgorithmES256, ecKey.Key.KID}} {
		signed := must(client.Sign(ctx, c.name, c.key.Version(), azkeys.SignParameters{Algorithm: to.Ptr(c.alg), Value: digest[:]}, nil))
		check(*signed.KID == *c.key, "%s signed by %s", c.alg, *signed.KID)
		verified := must(client.Verify(ctx, c.name, c.key.Version(), azkeys.VerifyParameters{
			Algorithm: to.Ptr(c.alg), Digest: digest[:], Signature: signed.Result,
		}, nil))
		check(*verified.Value, "%s verify in the vault", c.alg)
		tampered := bytes.Clone(signed.Result)
		tampered[0] ^= 1
		rejected := must(client.Verify(ctx, c.name, c.key.Version(), azkeys.VerifyParameters{
			Algorithm: to.Ptr(c.alg), Digest: digest[:], Signature: tampered,
		}, nil))
		check(!*rejected.Value, "%s rejects a tampered signature", c.alg)
		var localErr error
		switch c.alg {
		case azkeys.SignatureAlgorithmRS256:
			localErr = rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], signed.Result)
		case azkeys.SignatureAlgorithmPS256:
			localErr = rsa.VerifyPSS(rsaPub, crypto.SHA256, digest[:], signed.Result, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		default:
			half := len(signed.Result) / 2
			r, s := new(big.Int).SetBytes(signed.Result[:half]), new(big.Int).SetBytes(signed.Result[half:])
			if !ecdsa.Verify(ecPub, digest[:], r, s) {
				localErr = errors.New("ecdsa.Verify: invalid signature")
			}
		}
		check(localErr == nil, "%s signature verifies locally: %v", c.alg, localErr)
		signatures[string(c.alg)] = len(signed.Result)
	}
	check(signatures["ES256"] == 64, "ES256 signature is raw r||s (64 bytes), got %d", signatures["ES256"])
	results["signatures"] = signatures

	// Wrap a 256-bit content key with RSA-OAEP-256 and unwrap it again.
	wrapUnwrap(ctx, client, rsaName, rsaKey.Key.KID.Version(), *rsaKey.Key.KID)
	results["wrapUnwrap"] = "RSA-OAEP-256"

	// Delete, get the deleted key, recover, and wait until the key is back (as the Go docs show).
	deleted := must(client.DeleteKey(ctx, rsaName, nil))
	check(*deleted.RecoveryID == vaultURL+"/deletedkeys/"+rsaName, "recoveryId %s", *deleted.RecoveryID)
	days := deleted.ScheduledPurgeDate.Sub(*deleted.DeletedDate).Hours() / 24
	check(days > 89.9 && days < 90.1, "scheduled purge after %.2f days", days)
	gotDeleted := must(client.GetDeletedKey(ctx, rsaName, nil))
	check(*gotDeleted.Key.KID == *rsaKey.Key.KID, "deleted key %s", *gotDeleted.Key.KID)
	_, err := client.CreateKey(ctx, rsaName, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	check(statusOf(err) == http.StatusConflict, "create over a deleted key: %v", err)
	recovered := must(client.RecoverDeletedKey(ctx, rsaName, nil))
	check(*recovered.Key.KID == *rsaKey.Key.KID, "recovered %s", *recovered.Key.KID)
	var again azkeys.GetKeyResponse
	for i := 0; ; i++ {
		again, err = client.GetKey(ctx, rsaName, "", nil)
		if err == nil || statusOf(err) != http.StatusNotFound || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	check(err == nil && bytes.Equal(again.Key.N, rsaKey.Key.N), "the recovered key is the same key: %v", err)
	results["recovered"] = string(*again.Key.KID)

	// Delete and purge the EC key: afterwards it is gone for good.
	_ = must(client.DeleteKey(ctx, ecName, nil))
	_ = must(client.PurgeDeletedKey(ctx, ecName, nil))
	_, err = client.GetDeletedKey(ctx, ecName, nil)
	check(statusOf(err) == http.StatusNotFound, "deleted key after purge: %v", err)
	results["purged"] = ecName
	results["ok"] = true
	return results
}

// wrapUnwrap wraps a random 256-bit content key with RSA-OAEP-256 and unwraps it; version "" is the latest.
func wrapUnwrap(ctx context.Context, client *azkeys.Client, name, version string, kid azkeys.ID) {
	cek := make([]byte, 32)
	_, _ = rand.Read(cek)
	wrapped := must(client.WrapKey(ctx, name, version, azkeys.KeyOperationParameters{
		Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: cek,
	}, nil))
	check(len(wrapped.Result) == 256 && *wrapped.KID == kid, "wrapped %d bytes by %s", len(wrapped.Result), *wrapped.KID)
	unwrapped := must(client.UnwrapKey(ctx, name, version, azkeys.KeyOperationParameters{
		Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped.Result,
	}, nil))
	check(bytes.Equal(unwrapped.Result, cek), "RSA-OAEP-256 unwrap returns the content key")
}

// versionless wraps and unwraps with the latest version of a new key, addressed by name alone: azkeys
// then sends POST /keys/{name}/wrapkey (the empty version segment disappears), as callers that follow
// the latest version do (e.g. auto-unseal with a rotating key).
func versionless(ctx context.Context) map[string]any {
	vaultURL := fmt.Sprintf("https://%s.vault.azure.net", os.Getenv("KEY_VAULT_NAME"))
	client := must(azkeys.NewClient(vaultURL, must(azidentity.NewDefaultAzureCredential(nil)), nil))
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "go-latest-" + hex.EncodeToString(suffix)
	key := must(client.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil))
	wrapUnwrap(ctx, client, name, "", *key.Key.KID)
	return map[string]any{"ok": true, "kid": string(*key.Key.KID)}
}

func main() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, r)
			os.Exit(1)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var results map[string]any
	if len(os.Args) > 1 && os.Args[1] == "versionless" {
		results = versionless(ctx)
	} else {
		results = run(ctx)
	}
	out := must(json.Marshal(results))
	fmt.Println(string(out))
}
