"""Token attacks: every forged, tampered or misused token against every hop that checks tokens.

Each case is one token, sent to the gateway (proxy path), the canary gateway (proxy path and its
own summary route), orders, payments and inventory directly, and auth's userinfo. Every hop must
answer 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 section 3.1): never
2xx, never 5xx, and never a request out, which three things observe:
- the listener: the canary gateway's upstreams and every jku / x5u / ${jndi:} URL point at it;
- the state: each request would change something if it got through (place an order for alice,
  refund her payment, set a stock), and the last test checks that nothing changed;
- the answer itself: a 401 from the gateway means the token never went upstream.

Cases with a bad signature show the signature check; cases signed with auth's REAL key (see
``signer`` in conftest.py) get past it, so each header and claim check is shown on its own.
The cases follow RFC 8725 (JWT BCP) sections 2 and 3, RFC 9068 section 4 and the OWASP JSON Web
Token for Java cheat sheet; tests/security/README.md says which is which.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from relayshop_devtools.testing import DEFAULT_AUDIENCE, DEFAULT_ISSUER, TestKey
from relayshop_platform.catalogue import AUTH, audience_of

# auth's own audience: no hop accepts a user's token addressed to it (auth's userinfo takes the
# gateway's, the token as signed in).
AUTH_AUDIENCE = audience_of(AUTH)
ORDER = {"items": [{"sku": "CB-005", "quantity": 1}], "payment_method": "pm_card_visa"}
WEAK_SECRETS = (
    "secret",
    "password",
    "changeme",
    "relayshop",
    "your-256-bit-secret",
    "jwt-secret",
    "123456",
    "admin",
    "key",
    "auth-demo-secret",
    "gateway-demo-secret",
    "demo-service-secret",
)
# "Every claim set in turn to null, true, false, 0, "" and an injected string."
CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles", "scope", "sid", "client_id")
ODD_VALUES: dict[str, Any] = {"null": None, "true": True, "false": False, "zero": 0, "empty": ""}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return b64(raw)


@dataclass
class Forge:
    """Everything a forger needs: the real public key, a real token, and (for the claim cases)
    the real private key. Each method returns a compact token string."""

    kid: str
    private_key: rsa.RSAPrivateKey
    jwk: dict[str, Any]
    jwks_bytes: bytes
    # alice's token as signed in, the raw material of the structural cases (stripped, truncated,
    # re-serialised ...). In exchange mode its aud is the gateway's alone, so at orders, payments
    # and inventory the audience is a second barrier behind the one each case is about; the
    # verifier reaches it last (structure, algorithm, key, signature and claims come first), so
    # every such case is still refused for its own reason. The forged claims below name every
    # service (DEFAULT_AUDIENCE): for them the check under test is the only barrier.
    real_token: str
    refresh_token: str
    alice_sub: str
    listener_url: str
    other_key: TestKey  # another RSA key, published nowhere

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @property
    def injected(self) -> str:
        # Quotes, SQL, markup, CRLF (a forged log line) and a JNDI lookup of the listener.
        return (
            "x' OR '1'='1\"; DROP TABLE orders; -- <script>alert(1)</script>\r\n"
            f"forged log line ${{jndi:ldap://{self.listener_url[7:]}/a}}"
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims that would place an order as alice, with admin rights for good measure."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEFAULT_ISSUER,
            "sub": self.alice_sub,
            "aud": DEFAULT_AUDIENCE,
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "roles": ["customer", "admin"],
            "scope": "openid orders payments inventory",
            "client_id": "relayshop",
            "sid": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return claims

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": "RS256", "typ": "at+jwt", "kid": self.kid}
        header.update(overrides)
        return header

    def rs256(self, signing_input: str, key: rsa.RSAPrivateKey | None = None) -> bytes:
        key = key or self.private_key
        return key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())

    def signed(
        self,
        header: dict[str, Any] | bytes,
        claims: dict[str, Any] | bytes,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        """RS256 over exactly these header and claims bytes (the real key unless told)."""
        signing_input = f"{segment(header)}.{segment(claims)}"
        return f"{signing_input}.{b64(self.rs256(signing_input, key))}"

    def real_signed(self, drop: tuple[str, ...] = (), **overrides: Any) -> str:
        """Signed with auth's real key: only the claim under test is wrong."""
        claims = self.claims(**overrides)
        for name in drop:
            claims.pop(name)
        return self.signed(self.header(), claims)

    def real_header(self, drop: tuple[str, ...] = (), **overrides: Any) -> str:
        header = self.header(**overrides)
        for name in drop:
            header.pop(name)
        return self.signed(header, self.claims())

    def hmac(self, secret: bytes, alg: str = "HS256", **header: Any) -> str:
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        signing_input = f"{segment(self.header(alg=alg, **header))}.{segment(self.claims())}"
        signature = hmac.new(secret, signing_input.encode(), digest).digest()
        return f"{signing_input}.{b64(signature)}"

    def by_other_key(self, **header: Any) -> str:
        return self.signed(self.header(**header), self.claims(), self.other_key.private_key)

    def unsigned(self, alg: str, with_signature: bool) -> str:
        signing_input = f"{segment(self.header(alg=alg))}.{segment(self.claims())}"
        signature = b64(self.rs256(signing_input)) if with_signature else ""
        return f"{signing_input}.{signature}"

    def public_pem(self, fmt: serialization.PublicFormat) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, fmt)

    def tampered(self, **overrides: Any) -> str:
        """The real token's header and signature around a payload changed by the attacker, who
        also names every service in aud: only the signature stands in the way, at every hop."""
        header, payload, signature = self.real_token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims.update({"aud": DEFAULT_AUDIENCE, **overrides})
        return f"{header}.{segment(claims)}.{signature}"

    def psychic(self, signature: bytes, **header: Any) -> str:
        signing_input = f"{segment(self.header(alg='ES256', **header))}.{segment(self.claims())}"
        return f"{signing_input}.{b64(signature)}"

    def self_signed_certificate(self) -> str:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relayshop auth")])
        now = time.time()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.other_key.public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now - 60))
            .not_valid_after(_utc(now + 3600))
            .sign(self.other_key.private_key, hashes.SHA256())
        )
        return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _ec_public_jwk() -> dict[str, Any]:
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key))
    return jwk


Case = Callable[[Forge], str]


def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}

    # alg none in every spelling, with and without a signature (RFC 8725 2.1, 3.1).
    for alg in ("none", "None", "NONE", "nOnE"):
        cases[f"alg_{alg}_unsigned"] = lambda f, a=alg: f.unsigned(a, with_signature=False)
        cases[f"alg_{alg}_with_signature"] = lambda f, a=alg: f.unsigned(a, with_signature=True)
    cases["header_without_alg"] = lambda f: f.real_header(drop=("alg",))
    cases["empty_header_object"] = lambda f: f.signed({}, f.claims())
    cases["empty_header_segment"] = lambda f: "." + f.real_token.split(".", 1)[1]
    cases["header_json_array"] = lambda f: f.signed(b"[]", f.claims())
    cases["header_json_null"] = lambda f: f.signed(b"null", f.claims())
    cases["header_not_json"] = lambda f: f.signed(b"alg=RS256", f.claims())
    cases["header_not_base64url"] = lambda f: "!!!." + f.real_token.split(".", 1)[1]
    cases["header_invalid_utf8"] = lambda f: f.signed(b'{"alg":"RS256\xff"}', f.claims())
    cases["alg_as_list"] = lambda f: f.real_header(alg=["RS256"])
    cases["alg_lowercase_rs256"] = lambda f: f.real_header(alg="rs256")
    cases["alg_rs512_with_real_key"] = lambda f: f.real_header(alg="RS512")
    cases["alg_ps256_with_real_key"] = lambda f: _ps256(f)

    # The signature: stripped, truncated, flipped, from another key, or the payload tampered.
    cases["signature_stripped"] = lambda f: f.real_token.rsplit(".", 1)[0] + "."
    cases["signature_stripped_two_segments"] = lambda f: f.real_token.rsplit(".", 1)[0]
    cases["signature_truncated"] = lambda f: f.real_token[:-20]
    cases["signature_bit_flipped"] = lambda f: _flip_last_signature_byte(f.real_token)
    cases["signature_from_another_key_same_kid"] = lambda f: f.by_other_key()
    cases["signature_from_another_key_own_kid"] = lambda f: f.by_other_key(kid=f.other_key.kid)
    cases["signature_of_another_token"] = lambda f: (
        f.real_signed().rsplit(".", 1)[0] + "." + f.real_token.rsplit(".", 1)[1]
    )
    cases["payload_tampered_roles"] = lambda f: f.tampered(roles=["admin"])
    cases["payload_tampered_sub"] = lambda f: f.tampered(sub="someone-else")
    cases["payload_tampered_exp"] = lambda f: f.tampered(exp=int(time.time()) + 86400)

    # HS256 keyed with the public key (the RS/HS confusion), an empty secret, weak secrets.
    spki, pkcs1 = serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1
    cases["hs256_public_key_pem"] = lambda f: f.hmac(f.public_pem(spki))
    cases["hs256_public_key_pem_pkcs1"] = lambda f: f.hmac(f.public_pem(pkcs1))
    cases["hs256_public_key_pem_without_newline"] = lambda f: f.hmac(f.public_pem(spki).strip())
    cases["hs256_public_key_der"] = lambda f: f.hmac(
        f.public_key.public_bytes(serialization.Encoding.DER, spki)
    )
    cases["hs256_public_key_jwk"] = lambda f: f.hmac(json.dumps(f.jwk).encode())
    cases["hs256_public_key_jwk_compact"] = lambda f: f.hmac(
        json.dumps(f.jwk, separators=(",", ":"), sort_keys=True).encode()
    )
    cases["hs256_public_key_jwks_document"] = lambda f: f.hmac(f.jwks_bytes)
    cases["hs384_public_key_pem"] = lambda f: f.hmac(f.public_pem(spki), "HS384")
    cases["hs512_public_key_pem"] = lambda f: f.hmac(f.public_pem(spki), "HS512")
    cases["hs256_empty_secret"] = lambda f: f.hmac(b"")
    for secret in WEAK_SECRETS:
        cases[f"hs256_weak_secret_{secret}"] = lambda f, s=secret: f.hmac(s.encode())

    # ECDSA "psychic signature" (CVE-2022-21449: r = s = 0), and keys named in the token.
    cases["es256_psychic_signature_raw"] = lambda f: f.psychic(bytes(64))
    cases["es256_psychic_signature_der"] = lambda f: f.psychic(b"\x30\x06\x02\x01\x00\x02\x01\x00")
    cases["es256_psychic_signature_with_jwk"] = lambda f: f.psychic(bytes(64), jwk=_ec_public_jwk())
    cases["embedded_jwk"] = lambda f: f.by_other_key(kid=f.other_key.kid, jwk=f.other_key.jwk())
    cases["embedded_jwk_with_real_kid"] = lambda f: f.by_other_key(jwk=f.other_key.jwk())
    cases["jku_at_listener"] = lambda f: f.by_other_key(
        kid=f.other_key.kid, jku=f"{f.listener_url}/jwks.json"
    )
    cases["jku_at_listener_with_real_kid"] = lambda f: f.by_other_key(
        jku=f"{f.listener_url}/jwks.json"
    )
    cases["x5u_at_listener"] = lambda f: f.by_other_key(
        kid=f.other_key.kid, x5u=f"{f.listener_url}/cert.pem"
    )
    cases["x5c_self_signed"] = lambda f: f.by_other_key(x5c=[f.self_signed_certificate()])

    # kid: path traversal, SQL and shell metacharacters, empty, unknown, wrong types.
    kids: dict[str, Any] = {
        "path_traversal": "../../../../../../dev/null",
        "absolute_path": "/dev/null",
        "path_to_keys_dir": "../keys/../../keys/current.pem",
        "sql_union": "x' UNION SELECT 'secret' --",
        "sql_or": "' OR '1'='1",
        "shell_substitution": "$(touch /tmp/relayshop-pwned)",
        "shell_backticks": "`id`",
        "shell_pipe": "| cat /etc/passwd",
        "empty": "",
        "unknown": "unknown-" + uuid.uuid4().hex,
        "number": 123,
        "null": None,
        "list": ["a"],
        "too_long": "k" * 500,
        "nul_byte": "kid\x00",
    }
    for label, kid in kids.items():
        cases[f"kid_{label}"] = lambda f, k=kid: f.by_other_key(kid=k)
    cases["kid_real_plus_suffix"] = lambda f: f.by_other_key(kid=f.kid + "x")
    cases["kid_dev_null_hs256_empty_secret"] = lambda f: f.hmac(b"", kid="../../../../dev/null")

    # Header checks, signed with the real key: only the header is wrong.
    cases["crit_unknown"] = lambda f: f.real_header(crit=["x-relayshop"], **{"x-relayshop": 1})
    cases["crit_empty"] = lambda f: f.real_header(crit=[])
    cases["b64_false_unencoded_payload"] = lambda f: f.real_header(b64=False, crit=["b64"])
    cases["typ_jwt"] = lambda f: f.real_header(typ="JWT")
    cases["typ_missing"] = lambda f: f.real_header(drop=("typ",))
    cases["typ_list"] = lambda f: f.real_header(typ=["at+jwt"])
    cases["oversized_jose_header"] = lambda f: f.real_header(pad="h" * 9000)

    # Claim checks, signed with the real key (RFC 9068 section 4, RFC 8725 3.8-3.9).
    cases["aud_wrong"] = lambda f: f.real_signed(aud="another-api")
    cases["aud_missing"] = lambda f: f.real_signed(drop=("aud",))
    # aud may be an array (RFC 7519 4.1.3; a relay-mode token names every service), but only of
    # strings, and one of them must be the hop's own. DEFAULT_AUDIENCE is every service's.
    cases["aud_list_nested"] = lambda f: f.real_signed(aud=[DEFAULT_AUDIENCE])
    cases["aud_list_without_ours"] = lambda f: f.real_signed(aud=["another-api", AUTH_AUDIENCE])
    cases["aud_list_empty"] = lambda f: f.real_signed(aud=[])
    cases["iss_wrong"] = lambda f: f.real_signed(iss="https://evil.example/auth")
    cases["iss_prefixed"] = lambda f: f.real_signed(iss="https://evil.example/" + DEFAULT_ISSUER)
    cases["iss_ours_as_prefix"] = lambda f: f.real_signed(iss=DEFAULT_ISSUER + ".evil.example")
    cases["iss_trailing_slash"] = lambda f: f.real_signed(iss=DEFAULT_ISSUER + "/")
    cases["iss_list"] = lambda f: f.real_signed(iss=[DEFAULT_ISSUER])
    cases["iss_missing"] = lambda f: f.real_signed(drop=("iss",))
    cases["expired"] = lambda f: f.real_signed(exp=int(time.time()) - 3600)
    cases["expired_past_leeway"] = lambda f: f.real_signed(exp=int(time.time()) - 30)
    cases["nbf_in_future"] = lambda f: f.real_signed(nbf=int(time.time()) + 3600)
    cases["iat_in_future"] = lambda f: f.real_signed(iat=int(time.time()) + 3600)
    # Longer-lived than auth ever issues (300 s on this stack, plus 5 s of leeway): refused at
    # every hop, as a token from a misconfigured or compromised issuer.
    cases["lifetime_a_year"] = lambda f: _living(f, 365 * 24 * 3600)
    cases["lifetime_just_past_max"] = lambda f: _living(f, 306)
    for claim in ("exp", "iat", "sub", "jti", "client_id"):
        cases[f"{claim}_missing"] = lambda f, c=claim: f.real_signed(drop=(c,))
    cases["exp_as_string"] = lambda f: f.real_signed(exp=str(int(time.time()) + 300))
    cases["iat_as_string"] = lambda f: f.real_signed(iat=str(int(time.time())))
    cases["roles_as_string"] = lambda f: f.real_signed(roles="admin")
    cases["roles_with_number"] = lambda f: f.real_signed(roles=[1])
    cases["sub_as_number"] = lambda f: f.real_signed(sub=42)
    cases["sub_as_object"] = lambda f: f.real_signed(sub={"id": "alice"})
    cases["scope_as_list"] = lambda f: f.real_signed(scope=["openid"])
    for claim in CLAIMS:
        for label, value in ODD_VALUES.items():
            cases[f"claim_{claim}_{label}"] = lambda f, c=claim, v=value: f.real_signed(**{c: v})
        cases[f"claim_{claim}_injected"] = lambda f, c=claim: f.real_signed(**{c: f.injected})

    # Other serialisations, shapes and sizes; tokens of another kind.
    cases["jwe_compact"] = lambda f: ".".join(
        [segment({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": f.kid})]
        + [b64(bytes(n)) for n in (256, 12, 64, 16)]
    )
    cases["jwe_compact_dir"] = lambda f: ".".join(
        [segment({"alg": "dir", "enc": "A128CBC-HS256"}), "", b64(bytes(16)), b64(b"x"), "AA"]
    )
    cases["jws_json_general"] = lambda f: _json_serialization(f.real_token, general=True)
    cases["jws_json_flattened"] = lambda f: _json_serialization(f.real_token, general=False)
    cases["four_segments"] = lambda f: f.real_token + "." + b64(b"more")
    cases["trailing_dot"] = lambda f: f.real_token + "."
    cases["leading_dot"] = lambda f: "." + f.real_token
    cases["space_inside"] = lambda f: f.real_token[:40] + " " + f.real_token[40:]
    cases["padded_segments"] = lambda f: "==.".join(f.real_token.split(".", 1))
    cases["standard_base64_alphabet"] = lambda f: (
        f.real_token.replace("-", "+").replace("_", "/")
        if "-" in f.real_token or "_" in f.real_token
        else f.real_token + "+/"
    )
    cases["oversized_token"] = lambda f: f.real_signed(pad="p" * 9000)
    cases["refresh_token_as_access_token"] = lambda f: f.refresh_token
    return cases


def _living(f: Forge, seconds: int) -> str:
    """Signed with the real key, issued now, valid for ``seconds``."""
    now = int(time.time())
    return f.real_signed(iat=now, exp=now + seconds)


def _ps256(f: Forge) -> str:
    signing_input = f"{segment(f.header(alg='PS256'))}.{segment(f.claims())}"
    signature = f.private_key.sign(
        signing_input.encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    return f"{signing_input}.{b64(signature)}"


def _flip_last_signature_byte(token: str) -> str:
    head, signature = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[-1] ^= 0x01
    return f"{head}.{b64(bytes(raw))}"


def _json_serialization(token: str, *, general: bool) -> str:
    header, payload, signature = token.split(".")
    if general:
        body: dict[str, Any] = {
            "payload": payload,
            "signatures": [{"protected": header, "signature": signature}],
        }
    else:
        body = {"payload": payload, "protected": header, "signature": signature}
    return json.dumps(body)


CASES = _cases()


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forge(signer: Any, accounts: dict[str, Any], listener: Any, http: httpx.Client) -> Forge:
    alice = accounts["alice"]
    jwk = signer.jwks["keys"][0]
    return Forge(
        kid=signer.kid,
        private_key=signer.private_key,
        jwk=jwk,
        jwks_bytes=json.dumps(signer.jwks).encode(),
        real_token=alice.access_token,
        refresh_token=alice.refresh_token,
        alice_sub=alice.sub,
        listener_url=listener.url,
        other_key=TestKey(kid=signer.kid),
    )


@dataclass(frozen=True)
class Snapshot:
    alice_orders: int
    stock: int
    payment_status: str


def snapshot(
    http: httpx.Client, targets: dict[str, str], accounts: dict[str, Any], payment: str
) -> Snapshot:
    def get(path: str, who: str) -> Any:
        answer = http.get(
            targets["gateway"] + path,
            headers={"Authorization": f"Bearer {accounts[who].access_token}"},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    return Snapshot(
        alice_orders=len(get("/api/orders?limit=200", "alice")),
        stock=get("/api/inventory/products/KB-001", "walt")["stock"],
        payment_status=get(f"/api/payments/{payment}", "alice")["status"],
    )


@pytest.fixture(scope="module")
def before(
    http: httpx.Client, targets: dict[str, str], accounts: dict[str, Any], alice_order: Any
) -> Snapshot:
    return snapshot(http, targets, accounts, alice_order.payment_id)


@pytest.fixture(scope="module")
def hops(alice_order: Any, canary_gateway: str) -> list[tuple[str, str, str, Any]]:
    """(target, method, path, json body): each request changes state if the token is accepted."""
    return [
        ("gateway", "POST", "/api/orders", ORDER),
        ("canary-gateway", "POST", "/api/orders", ORDER),
        ("canary-gateway", "GET", f"/api/orders/{alice_order.id}/summary", None),
        ("orders", "POST", "/api/orders", ORDER),
        ("payments", "POST", f"/api/payments/{alice_order.payment_id}/refund", None),
        ("inventory", "PUT", "/api/inventory/products/KB-001/stock", {"stock": 1}),
        ("auth", "GET", "/auth/userinfo", None),
    ]


def assert_invalid_token(answer: httpx.Response, where: str) -> None:
    assert answer.status_code == 401, f"{where}: {answer.status_code} {answer.text[:300]}"
    challenge = answer.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, (
        f"{where}: WWW-Authenticate {challenge!r}"
    )


# -- the attacks --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_forged_token_is_refused_by_every_hop(
    case: str,
    forge: Forge,
    before: Snapshot,
    hops: list[tuple[str, str, str, Any]],
    targets: dict[str, str],
    attacker: httpx.Client,
    listener: Any,
) -> None:
    token = CASES[case](forge)
    for target, method, path, body in hops:
        answer = attacker.request(
            method, targets[target] + path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert_invalid_token(answer, f"{case} at {target} {method} {path}")
    assert listener.received == [], f"{case}: something connected to the listener"


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=", "Token abc"],
    ids=["no_header", "bearer_alone", "basic_credentials", "other_scheme"],
)
def test_missing_token_is_challenged_without_error_code(
    authorization: str,
    hops: list[tuple[str, str, str, Any]],
    targets: dict[str, str],
    attacker: httpx.Client,
) -> None:
    # RFC 6750 section 3.1: no credentials at all -> a challenge without an error code.
    headers = {"Authorization": authorization} if authorization else {}
    for target, method, path, body in hops:
        answer = attacker.request(method, targets[target] + path, json=body, headers=headers)
        assert answer.status_code == 401, f"{target} {path}: {answer.status_code}"
        challenge = answer.headers.get("www-authenticate", "")
        assert challenge.startswith("Bearer") and "error=" not in challenge, challenge


@pytest.mark.parametrize("target", ["gateway", "auth"])
def test_access_token_at_the_refresh_grant_is_invalid_grant(
    target: str, forge: Forge, targets: dict[str, str], attacker: httpx.Client
) -> None:
    answer = attacker.post(
        f"{targets[target]}/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": forge.real_token},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_grant"


def test_forged_tokens_changed_nothing_and_called_nobody(
    before: Snapshot,
    http: httpx.Client,
    targets: dict[str, str],
    accounts: dict[str, Any],
    alice_order: Any,
    listener: Any,
) -> None:
    """Runs after the attacks above (file order): every forged request would have placed an
    order, refunded alice's payment or set a stock had any hop accepted it."""
    assert snapshot(http, targets, accounts, alice_order.payment_id) == before
    assert listener.received == []
