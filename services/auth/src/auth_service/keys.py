"""Auth's signing keys: RSA 2048 / RS256, kept on disk, published as a JWKS, rotated on demand.

On disk (``keys_dir``, mode 0700):
    <kid>.pem    the private key, PKCS#8 PEM, mode 0600 (it signs every token: guard it)
    keys.json    which kid is current and when each older key stopped signing (mode 0600)

The ``kid`` is the key's RFC 7638 thumbprint, so it names the key material itself.

Lifecycle of a key (docs/api.md, section 6):
    current     signs new tokens, published in the JWKS
    previous    after a rotation: signs nothing, still published until every token it signed has
                expired (``stopped_signing_at + grace``, grace = access token TTL + leeway)
    gone        after that grace, or at once when an admin retires it: dropped from the JWKS and
                deleted from disk, so its tokens fail everywhere (after each service's refetch)

Keys are parsed once into key objects; ``get(kid)`` is the platform's KeySource, so auth verifies
its own tokens with the same TokenVerifier every other service uses.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"
METADATA_FILE = "keys.json"
log = logging.getLogger(__name__)


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    created_at: int
    stopped_signing_at: int | None = None

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        # Public members only (RFC 7517 section 9.3): never let "d", "p", "q", ... slip in.
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
            "n": jwk["n"],
            "e": jwk["e"],
        }


class KeyNotFound(LookupError):
    pass


class KeyInUse(ValueError):
    pass


class KeyStore:
    def __init__(self, directory: Path, grace_seconds: int) -> None:
        self.directory = directory
        self.grace_seconds = grace_seconds
        self._keys: dict[str, SigningKey] = {}
        self._current_kid = ""
        self._lock = asyncio.Lock()

    # -- reading ---------------------------------------------------------------------------
    @property
    def current(self) -> SigningKey:
        return self._keys[self._current_kid]

    def published(self, now: float | None = None) -> list[SigningKey]:
        now = time.time() if now is None else now
        return [key for key in self._keys.values() if self._is_published(key, now)]

    def _is_published(self, key: SigningKey, now: float) -> bool:
        return key.stopped_signing_at is None or now < key.stopped_signing_at + self.grace_seconds

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.published()]}

    async def get(self, kid: str) -> Any | None:
        """The platform KeySource: the public key for ``kid`` while it is published."""
        key = self._keys.get(kid)
        if key is None or not self._is_published(key, time.time()):
            return None
        return key.public_key

    # -- changing --------------------------------------------------------------------------
    # The key dict is only ever changed on the event loop; worker threads do file I/O alone, so
    # a request reading the keys never sees them change under its feet.
    async def load(self) -> None:
        """Load the keys from disk, creating the first one on a fresh data directory."""
        async with self._lock:
            keys, current = await asyncio.to_thread(_load_or_create, self.directory)
            self._keys, self._current_kid = keys, current
            await self._prune_and_save()

    async def rotate(self) -> SigningKey:
        """Make a brand-new key current; the old one keeps verifying during its grace."""
        async with self._lock:
            new_key = await asyncio.to_thread(_generate)
            await asyncio.to_thread(_write_key, self.directory, new_key)
            now = int(time.time())
            for key in self._keys.values():
                if key.stopped_signing_at is None:
                    key.stopped_signing_at = now
            self._keys[new_key.kid] = new_key
            self._current_kid = new_key.kid
            await self._prune_and_save()
            log.info("rotated signing key: current kid is now %s", new_key.kid)
            return new_key

    async def retire(self, kid: str) -> None:
        """Drop a non-current key now: every token it signed stops verifying."""
        async with self._lock:
            key = self._keys.get(kid)
            if key is None or not self._is_published(key, time.time()):
                raise KeyNotFound(kid)
            if kid == self._current_kid:
                raise KeyInUse(kid)
            del self._keys[kid]
            await self._prune_and_save()
            log.info("retired signing key %s", kid)

    async def _prune_and_save(self) -> None:
        now = time.time()
        self._keys = {kid: key for kid, key in self._keys.items() if self._is_published(key, now)}
        metadata = {
            "current": self._current_kid,
            "keys": [
                {
                    "kid": key.kid,
                    "created_at": key.created_at,
                    "stopped_signing_at": key.stopped_signing_at,
                }
                for key in self._keys.values()
            ],
        }
        await asyncio.to_thread(_save, self.directory, metadata, set(self._keys))


# -- disk (these run in a worker thread) -----------------------------------------------------
def _load_or_create(directory: Path) -> tuple[dict[str, SigningKey], str]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)  # also when it already existed with looser permissions
    metadata_path = directory / METADATA_FILE
    metadata = json.loads(metadata_path.read_text()) if metadata_path.exists() else {}
    keys: dict[str, SigningKey] = {}
    for entry in metadata.get("keys", []):
        path = _pem_path(directory, str(entry["kid"]))
        if not path.exists():
            log.warning("signing key %s is listed but missing on disk; skipped", entry["kid"])
            continue
        os.chmod(path, 0o600)
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        key = SigningKey(
            str(entry["kid"]),
            private_key,
            int(entry["created_at"]),
            entry.get("stopped_signing_at"),
        )
        keys[key.kid] = key
    current = metadata.get("current")
    if not isinstance(current, str) or current not in keys:
        first = _generate()
        _write_key(directory, first)
        keys[first.kid] = first
        current = first.kid
        log.info("created signing key %s in %s", first.kid, directory)
    keys[current].stopped_signing_at = None
    return keys, current


def _save(directory: Path, metadata: dict[str, Any], keep: set[str]) -> None:
    for path in directory.glob("*.pem"):
        if path.stem not in keep:
            path.unlink()  # expired or retired: a private key nobody needs is only a risk
    _write_private(directory / METADATA_FILE, json.dumps(metadata, indent=2).encode())


def _write_key(directory: Path, key: SigningKey) -> None:
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(_pem_path(directory, key.kid), pem)


def _pem_path(directory: Path, kid: str) -> Path:
    return directory / f"{kid}.pem"


def _generate() -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(thumbprint(private_key.public_key()), private_key, int(time.time()))


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace; base64url."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by this user only (0600 from the first byte), then swap it in."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
