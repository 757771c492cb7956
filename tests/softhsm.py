"""A throw-away SoftHSM2 token for the PKCS#11 key-encryption-key tests.

``softhsm2-util --init-token --free`` makes a token in a temporary directory named by its own
``SOFTHSM2_CONF``; nothing outside that directory changes. Nothing is installed here: ``make
softhsm-deps`` installs Debian's ``softhsm2`` under CI=true. ``find_softhsm()`` says why there is
none, so callers can skip (a developer without SoftHSM2) or fail (CI).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

__all__ = ["PIN", "PIN_ENV", "SoftHsm", "find_softhsm"]

PIN = "246810"
PIN_ENV = "KLUIS_TEST_PKCS11_PIN"
_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def find_softhsm() -> tuple[str | None, str]:
    """(the SoftHSM2 PKCS#11 module's path, "") or (None, why not)."""
    module = next((m for m in _MODULES if Path(m).exists()), None)
    if shutil.which("softhsm2-util") is None or module is None:
        return None, (
            "SoftHSM2 is not installed (no softhsm2-util or libsofthsm2.so); install Debian's softhsm2 "
            "package (`make softhsm-deps` does under CI=true) to run the PKCS#11 KEK tests"
        )
    return module, ""


class SoftHsm:
    """Tokens in a temporary directory; ``env`` is what a process needs to see them (set it before
    the PKCS#11 module is first loaded in a process: SoftHSM2 reads its configuration then)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.root = Path(tempfile.mkdtemp(prefix="kluis-softhsm-"))
        (self.root / "tokens").mkdir()
        self.conf = self.root / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        self.env = {"SOFTHSM2_CONF": str(self.conf), PIN_ENV: PIN}

    def init_token(self, label: str, pin: str = PIN) -> None:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "so-" + pin, "--pin", pin],
            check=True,
            capture_output=True,
            env={"SOFTHSM2_CONF": str(self.conf), "PATH": "/usr/bin:/bin:/usr/local/bin"},
            timeout=60,
        )

    def uri(self, token: str, key: str, pin_env: str = PIN_ENV) -> str:
        """A ``pkcs11:`` KEK source for the key labelled ``key`` on ``token``."""
        return (
            f"pkcs11:token={quote(token)};object={quote(key)}?module-path={quote(self.module)}&pin-source=env:{pin_env}"
        )

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
