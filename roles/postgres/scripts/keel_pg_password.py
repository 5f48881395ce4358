#!/usr/bin/python3
# managed by keel: roles/postgres
"""SCRAM-SHA-256 verifiers of PostgreSQL role passwords (standard library only).

On the controller keel imports this to check a role's stored verifier against its password: the
verifier is recomputed with the stored salt and iterations, so an unchanged password is no change.
On the db host it runs as `keel-pg-password ROLE FILE` (as postgres) and sets the role's
password from a secret file: the verifier is computed here and fed to psql on stdin, so the
password is never on a command line, in an SQL statement or in the server's log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import subprocess
import sys
import unicodedata

ITERATIONS = 4096  # PostgreSQL 15's scram_iterations (fixed in 15)


def normalise(password: str) -> str:
    """A password as read from a secret file: one trailing newline is not part of it."""
    return password.removesuffix("\n")


def saslprep(password: str) -> bytes:
    """PostgreSQL's SASLprep: ASCII as is; otherwise RFC 4013, or the raw bytes if that fails."""
    if password.isascii():
        return password.encode()
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password
                     if not stringprep.in_table_b1(c))
    prepped = unicodedata.normalize("NFKC", mapped)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
                  stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
                  stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
                  stringprep.in_table_a1)
    if not prepped or any(check(c) for c in prepped for check in prohibited):
        return password.encode()
    if any(stringprep.in_table_d1(c) for c in prepped):
        if any(stringprep.in_table_d2(c) for c in prepped) or not (
                stringprep.in_table_d1(prepped[0]) and stringprep.in_table_d1(prepped[-1])):
            return password.encode()
    return prepped.encode()


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    stored = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored).decode()}:{b64(server).decode()}")


def matches(password: str, scram: str | None, digest: str) -> bool:
    """Whether a stored verifier is this password's. scram is the verifier's 'iterations:salt'
    and digest the sha256 (hex) of the whole verifier: all the controller ever sees of it."""
    if not scram:
        return False
    iterations, salt = scram.split(":", 1)
    candidate = verifier(password, base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(hashlib.sha256(candidate.encode()).hexdigest(), digest)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: keel-pg-password ROLE FILE", file=sys.stderr)
        return 2
    role, path = argv
    with open(path, encoding="utf-8") as f:
        password = normalise(f.read())
    quoted = '"' + role.replace('"', '""') + '"'
    sql = f"ALTER ROLE {quoted} PASSWORD '{verifier(password)}';\n"
    return subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-f", "-"], input=sql,
                          text=True, stdout=subprocess.DEVNULL).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
