"""Masking that holds (DESIGN §13): every printable form of a value, multi-line values across writes, the
output cap, and the worker's own credentials. No services: the settings are built or set in the env."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import textwrap
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from core.actions.context import MAX_OUTPUT_BYTES, OutputSink
from core.safety.masking import LIVE, MASK, Masker, MaskingFilter, mask_text
from core.safety.process_secrets import register_process_secrets
from core.safety.secret_forms import MIN_SECRET_LENGTH
from db.settings import Settings, get_settings

# '?>~' gives '+' and '/' in base64 (so base64url differs), 22 bytes give padding in base64 and base32, ' "' need escaping.
CANARY = 'cAnArY/7f?>~ s3"cr3t!!'


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pem() -> str:
    """A PEM-shaped multi-line secret, fresh per test: 64-character base64 lines between BEGIN/END."""
    body = textwrap.wrap(_b64(secrets.token_bytes(300)), 64)
    return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END OPENSSH PRIVATE KEY-----\n"


def _key_lines(pem: str) -> list[str]:
    """The lines of a key that must never show (the BEGIN/END headers are not secret)."""
    return [line for line in pem.splitlines() if not line.startswith("-----")]


@pytest.fixture
def masker() -> Iterator[Masker]:
    m = Masker()
    yield m
    m.close()


def _encodings_of(value: str) -> dict[str, str]:
    data = value.encode()
    forms = {
        "raw": value,
        "base64": _b64(data),
        "base64 unpadded": _b64(data).rstrip("="),
        "base64url": base64.urlsafe_b64encode(data).decode(),
        "base64url unpadded": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "hex": data.hex(),
        "HEX": data.hex().upper(),
        "base32": base64.b32encode(data).decode(),
        "base32 unpadded": base64.b32encode(data).decode().rstrip("="),
        "quote": urllib.parse.quote(value, safe=""),
        "quote_plus": urllib.parse.quote_plus(value),
        "json": json.dumps(value)[1:-1],
        "reversed": value[::-1],
        "reversed base64": _b64(data)[::-1],
        "reversed hex": data.hex()[::-1],
        "base64 of reversed": _b64(value[::-1].encode()),
        "hex of reversed": value[::-1].encode().hex(),
        "base64 with echo's newline": _b64(f"{value}\n".encode()),
        "base32 with echo's newline": base64.b32encode(f"{value}\n".encode()).decode(),
    }
    assert len(set(forms.values())) == len(forms), "the canary must make every form distinct"
    return forms


@pytest.mark.parametrize(("name", "form"), _encodings_of(CANARY).items())
def test_each_encoding_of_a_registered_value_is_masked_whole(masker: Masker, name: str, form: str) -> None:
    """Each form comes out as one ***, by the step's masker and (while live) by mask_text."""
    masker.register(CANARY)
    assert masker.mask(f"x {form} y") == f"x {MASK} y", name
    assert mask_text(f"x {form} y") == f"x {MASK} y", name


def test_ordinary_text_and_short_values_are_left_alone(masker: Masker) -> None:
    """Masking does not touch text without a registered value, and values under MIN_SECRET_LENGTH are ignored."""
    masker.register(CANARY)
    masker.register("a" * (MIN_SECRET_LENGTH - 1))
    line = "deployed 3 units; all healthy (aa)"
    assert masker.mask(line) == line and mask_text(line) == line


def test_overlapping_occurrences_leave_no_fragment(masker: Masker) -> None:
    """A value's reversed form overlapping the value itself is masked as one span, not half of it."""
    masker.register("abcdefgh")
    assert masker.mask("<hgfedcbabcdefgh>") == f"<{MASK}>"


def test_a_multi_line_value_printed_whole_is_masked(masker: Masker) -> None:
    pem = _pem()
    masker.register(pem)
    assert masker.mask(f"before\n{pem}after\n") == f"before\n{MASK}after\n"


def test_a_multi_line_value_split_across_two_writes_at_every_offset_is_masked(masker: Masker) -> None:
    """Wherever a chunk boundary falls (inside a line, on a newline), the stored output holds no key line."""
    pem = _pem()
    masker.register(pem)
    output = f"$ printenv KEY\n{pem}done\n"
    for offset in range(len(output) + 1):
        sink = OutputSink(masker)
        sink.write(output[:offset])
        sink.write(output[offset:])
        assert sink.text() == f"$ printenv KEY\n{MASK}done\n", offset


def test_a_multi_line_value_written_one_character_at_a_time_is_masked(masker: Masker) -> None:
    pem = _pem()
    masker.register(pem)
    sink = OutputSink(masker)
    for char in pem:
        sink.write(char)
    assert sink.text() == MASK


def test_each_line_of_a_multi_line_value_is_masked_on_its_own(masker: Masker) -> None:
    """Lines printed apart, with other text between, or only some of them (head), or each reversed (rev)."""
    pem = _pem()
    masker.register(pem)
    lines = _key_lines(pem)
    interleaved = "".join(f"{i}: {line} :{i}\n" for i, line in enumerate(lines))
    assert masker.mask(interleaved) == "".join(f"{i}: {MASK} :{i}\n" for i in range(len(lines)))
    head = "\n".join(pem.splitlines()[:3])
    assert not any(line in (masker.mask(head) or "") for line in lines)
    rev = "\n".join(line[::-1] for line in pem.splitlines())
    assert not any(line[::-1] in (masker.mask(rev) or "") for line in lines)


@pytest.mark.parametrize(
    ("tool", "wrapped"),
    [
        ("base64", lambda data: textwrap.wrap(_b64(data), 76)),
        ("openssl base64", lambda data: textwrap.wrap(_b64(data), 64)),
        ("base32", lambda data: textwrap.wrap(base64.b32encode(data).decode(), 76)),
        ("xxd -p", lambda data: textwrap.wrap(data.hex(), 60)),
    ],
)
def test_an_encoding_wrapped_by_the_usual_tool_is_masked_line_by_line(
    masker: Masker, tool: str, wrapped: Callable[[bytes], list[str]]
) -> None:
    """`printenv KEY | base64` wraps its output: every wrapped line is masked (a short last one may stay)."""
    pem = _pem()
    masker.register(pem)
    lines = wrapped(pem.encode())
    assert len(lines) > 3
    masked = (masker.mask("\n".join(lines) + "\n") or "").splitlines()
    assert masked[:-1] == [MASK] * (len(lines) - 1), tool
    assert masked[-1] == MASK or len(lines[-1]) < MIN_SECRET_LENGTH, tool


@pytest.mark.parametrize("before", [MAX_OUTPUT_BYTES - n for n in (1, 2, 5, 10, 19)])
def test_the_cap_never_leaves_part_of_a_secret(masker: Masker, before: int) -> None:
    """A secret straddling the 10 KB cap is masked before the cut: no prefix of it is stored."""
    secret = "Zq9-cap-" + secrets.token_hex(8)
    masker.register(secret)
    sink = OutputSink(masker)
    sink.write("x" * before)
    sink.write(secret[:7])  # the secret arrives in two writes, split where the cap falls
    sink.write(secret[7:] + "\n" + "y" * 100)
    text = sink.text()
    kept, summary = text.split("\n… ")
    assert secret[:4] not in text and len(kept.encode()) <= MAX_OUTPUT_BYTES
    assert kept == ("x" * before + MASK + "\n" + "y" * 100)[:MAX_OUTPUT_BYTES]
    assert summary.endswith(f"more bytes not stored (limit {MAX_OUTPUT_BYTES})")


@pytest.mark.parametrize("tail", [1, 4, 12, 100, 600])
def test_output_beyond_what_the_sink_holds_never_shows_a_secret_cut_off_at_the_end(masker: Masker, tail: int) -> None:
    """A huge output cut where the sink stops holding it, in the middle of a secret: that secret's head is not
    stored, even when masking leaves the head short enough to fit under the cap."""
    secret = "Zq9-held-" + secrets.token_hex(300)
    masker.register(secret)
    sink = OutputSink(masker)
    held = 2 * MAX_OUTPUT_BYTES + masker.margin
    # Many masked copies first, so the text shrinks and the end of what is held falls inside the kept part.
    copies = (secret + "\n") * ((held - tail) // (len(secret) + 1))
    sink.write(copies + "." * (held - tail - len(copies)))
    sink.write(secret + "\n" + "z" * MAX_OUTPUT_BYTES)
    text = sink.text()
    assert secret[:4] not in text and "z" not in text
    assert f"more bytes not stored (limit {MAX_OUTPUT_BYTES})" in text


def test_a_credential_cut_off_where_the_sink_stops_holding_output_is_not_shown(masker: Masker) -> None:
    """An unregistered bearer token whose first characters are the last ones held (too few to look like a
    token) is not shown: the patterns' margin is left out too."""
    sink = OutputSink(masker)
    held = 2 * MAX_OUTPUT_BYTES + masker.margin
    sink.write("." * (held - len("Authorization: Bearer Zq9")) + "\n")
    sink.write("Authorization: Bearer Zq9" + secrets.token_hex(20) + "\n")
    assert "Zq9" not in sink.text() and "more bytes not stored" in sink.text()


def test_a_registered_value_after_a_credential_keyword_keeps_the_keyword(masker: Masker) -> None:
    """Values are masked before patterns, so the header name stays readable (and the pattern still counts)."""
    token = secrets.token_hex(16)
    masker.register(token)
    assert masker.mask(f"Authorization: Bearer {token}") == f"Authorization: Bearer {MASK}"


def test_a_small_output_is_kept_whole_with_no_summary(masker: Masker) -> None:
    masker.register(CANARY)
    sink = OutputSink(masker)
    sink.write("one\n")
    sink.write(f"two {CANARY}\n")
    assert sink.text() == f"one\ntwo {MASK}\n"


# -- the worker's own credentials ---------------------------------------------------------------------


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The env may be changed for one test; the cached settings are dropped before and after."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_process_secrets_registered_from_settings_are_masked_by_a_fresh_masker_and_mask_text() -> None:
    """The Fernet key (and its raw bytes), the DB and Redis passwords and the Vault token, in any form."""
    key = Fernet.generate_key().decode()
    db_password, redis_password, vault_token = (f"pw-{secrets.token_hex(6)}" for _ in range(3))
    register_process_secrets(
        Settings(
            secret_key=key,
            database_url=f"postgresql+psycopg2://opsc:{db_password}@db.example:5432/opsc",
            redis_url=f"redis://:{redis_password}@cache.example:6379/0",
            vault_token=vault_token,
        )
    )
    raw_key = base64.urlsafe_b64decode(key)
    forms = [key, key[::-1], key.encode().hex(), raw_key.hex(), _b64(raw_key), db_password, db_password[::-1]]
    forms += [base64.b32encode(db_password.encode()).decode(), redis_password, vault_token]
    masker = Masker()  # registers nothing of its own
    try:
        for form in forms:
            assert masker.mask(f"<{form}>") == f"<{MASK}>", form
            assert mask_text(f"<{form}>") == f"<{MASK}>", form
    finally:
        masker.close()
    assert mask_text(f"<{key}>") == f"<{MASK}>"  # always on: not tied to a step
    assert key not in LIVE.snapshot()  # and not mistaken for a step's value


def test_process_secrets_are_read_lazily_from_the_current_settings(
    fresh_settings: pytest.MonkeyPatch, masker: Masker
) -> None:
    """No registration call: a Masker made after the env names a key and a DB password masks both."""
    key, password = Fernet.generate_key().decode(), f"lazy-{secrets.token_hex(6)}"
    fresh_settings.setenv("OPSC_SECRET_KEY", key)
    fresh_settings.setenv("OPSC_DATABASE_URL", f"postgresql://opsc:{urllib.parse.quote(password)}@db/opsc")
    get_settings.cache_clear()
    assert masker.mask(f"{key} {password}") == f"{MASK} {MASK}"
    assert mask_text(password[::-1]) == MASK


def test_the_embedded_key_file_is_masked_once_it_exists(fresh_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The key file is generated on first use of the secret store, after masking began: it is still masked."""
    key_file = tmp_path / "opsc.secret-key"
    fresh_settings.delenv("OPSC_SECRET_KEY", raising=False)
    fresh_settings.setenv("OPSC_SECRET_KEY_FILE", str(key_file))
    get_settings.cache_clear()
    assert mask_text("nothing yet") == "nothing yet"
    key = Fernet.generate_key().decode()
    key_file.write_text(key + "\n")
    assert mask_text(f"<{key}>") == f"<{MASK}>"
    assert mask_text(f"[{key.encode().hex()}]") == f"[{MASK}]"


def test_the_log_filter_masks_process_secrets() -> None:
    token = f"hvs.{secrets.token_urlsafe(18)}"
    register_process_secrets(Settings(vault_token=token))
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("opsc.test.process_secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("vault said %s", base64.b32encode(token.encode()).decode())
    finally:
        logger.removeHandler(handler)
    assert buffer.getvalue() == f"vault said {MASK}\n"
