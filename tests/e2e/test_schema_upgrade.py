"""A data directory written by the first kluis release, served by this one: keys intact, through the SDK."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

from tests.e2e.conftest import Principal, proxied_credential, proxied_transport
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parents[1] / "store" / "fixtures" / "schema_v1"


def test_first_release_data_dir_upgrades_on_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    expected = json.loads((data / "expected.json").read_text())
    server = KluisServer(data, extra_args=["--workers", "1"])
    status = server.cli_json("db", "status")
    assert status["version"] == 0 and status["latest"] >= 2
    assert server.cli_json("db", "upgrade") == {"database": str(data / "kluis.db"), "from": 0, "to": status["latest"]}
    assert server.cli_json("db", "upgrade")["from"] == status["latest"]  # nothing left to do
    server.start()
    try:
        a = server.admin()
        admin = Principal(a["appId"], a["password"], a["tenant"])
        cred = proxied_credential(server, admin)
        client = KeyClient(f"https://{expected['vault']}.vault.azure.net", cred, transport=proxied_transport(server))
        rsa = client.get_key("rsa-key")
        assert rsa.properties.version == expected["rsa_versions"][1] and rsa.properties.tags == {"env": "new"}
        assert [p.version for p in client.list_properties_of_key_versions("rsa-key")] == expected["rsa_versions"]
        policy = client.get_key_rotation_policy("rsa-key")
        assert policy.expires_in == "P90D"
        ec = client.get_key("ec-key")
        assert ec.properties.version == expected["ec_version"]
        crypto = CryptographyClient(ec, cred, transport=proxied_transport(server))
        digest = bytes.fromhex(expected["digest"])
        # the signature the first release made verifies, and the old private key still signs
        assert crypto.verify(SignatureAlgorithm.es256, digest, bytes.fromhex(expected["signature"])).is_valid
        fresh = crypto.sign(SignatureAlgorithm.es256, hashlib.sha256(b"after upgrade").digest())
        assert crypto.verify(SignatureAlgorithm.es256, hashlib.sha256(b"after upgrade").digest(), fresh.signature)
        assert [d.name for d in client.list_deleted_keys()] == [expected["deleted"]]
        client.begin_recover_deleted_key(expected["deleted"]).result()
        assert client.get_key(expected["deleted"]).key_type == "EC"
    finally:
        server.stop()
