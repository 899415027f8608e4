"""The audit chain's keys (DESIGN §13), derived from the installation's secret key material, never stored.

- a per-tenant HMAC-SHA256 key that links every event of the tenant's chain (core/audit_links.py);
- one Ed25519 key pair that signs the chain's checkpoints (core/ops/audit_checkpoints.py): the public half
  is published (``opsconductor audit public-key``, the export's header) so a SIEM can check checkpoints;
- a per-tenant HMAC-SHA256 key that seals what an approval binds to (core/approval_rules.py): an execution's
  plan hash, run mode, requester and level, and each approval, so database access alone cannot re-bind them.

Both come from ``OPSC_SECRET_KEY`` (or the embedded key file) through HKDF-SHA256 with distinct labels, so
neither reveals the secret store's key nor the other. Rotating the secret key therefore changes them: the
links written before no longer verify under the new key (docs/operations.md says what to do).
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.safety.secret_store import key_material
from db.settings import Settings, get_settings

CHAIN_LABEL = b"opsconductor/audit-chain/v1/"
SIGNING_LABEL = b"opsconductor/audit-checkpoint-signing/v1"
SEAL_LABEL = b"opsconductor/approval-seal/v1/"

_lock = threading.Lock()
_material: tuple[Settings, bytes] | None = None  # read once per settings object (a file read per commit otherwise)
_chain_keys: dict[tuple[bytes, str], bytes] = {}
_signing: dict[bytes, Ed25519PrivateKey] = {}
_seal_keys: dict[tuple[bytes, str], bytes] = {}


def _derive(material: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material)


def installation_material() -> bytes:
    """The secret key material of this process's settings, as bytes (cached per settings object).

    Raises:
        SafetyRefused: no key (PostgreSQL without ``OPSC_SECRET_KEY``).
    """
    global _material
    settings = get_settings()
    cached = _material
    if cached is not None and cached[0] is settings:
        return cached[1]
    material = key_material(settings).encode()
    with _lock:
        _material = (settings, material)
    return material


def _tenant_key(cache: dict[tuple[bytes, str], bytes], label: bytes, tenant_id: str, material: bytes | None) -> bytes:
    """The key derived for ``tenant_id`` under ``label``, cached in ``cache``."""
    material = installation_material() if material is None else material
    cache_key = (material, tenant_id)
    key = cache.get(cache_key)
    if key is None:
        key = _derive(material, label + tenant_id.encode())
        with _lock:
            if len(cache) > 10_000:  # tenants x key changes: bounded, not a leak
                cache.clear()
            cache[cache_key] = key
    return key


def chain_key(tenant_id: str, material: bytes | None = None) -> bytes:
    """The HMAC key of ``tenant_id``'s chain (``material``: another installation's, for tests and tools)."""
    return _tenant_key(_chain_keys, CHAIN_LABEL, tenant_id, material)


def seal_key(tenant_id: str, material: bytes | None = None) -> bytes:
    """The HMAC key that seals ``tenant_id``'s executions and approvals (distinct from its chain key)."""
    return _tenant_key(_seal_keys, SEAL_LABEL, tenant_id, material)


def link_mac(key: bytes, canonical: bytes) -> str:
    """HMAC-SHA256 (hex) of a link's canonical encoding."""
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def signing_key(material: bytes | None = None) -> Ed25519PrivateKey:
    """The installation's checkpoint signing key (deterministic: the same secret key, the same key pair)."""
    material = installation_material() if material is None else material
    key = _signing.get(material)
    if key is None:
        key = Ed25519PrivateKey.from_private_bytes(_derive(material, SIGNING_LABEL))
        with _lock:
            _signing[material] = key
    return key


def public_key_pem(material: bytes | None = None) -> str:
    """The checkpoint verification key, PEM (SubjectPublicKeyInfo): what a SIEM needs, and nothing secret."""
    public = signing_key(material).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str) -> Ed25519PublicKey:
    """A PEM public key as ``public_key_pem`` writes it."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key
