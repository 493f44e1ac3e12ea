"""Shared helpers of the compatibility scripts: settings from the environment
the Rust harness (mod.rs) sets, version reporting, and failing loudly.

Nothing here turns TLS verification off: every client is given the sandbox
CA (SBX_CA_FILE) as its trusted root.
"""

import base64
import importlib.metadata
import json
import os
import ssl
import sys


def env(name):
    """A setting the harness passes; fails clearly when it is missing."""
    value = os.environ.get(name)
    if not value:
        fail(f"the environment variable {name} is not set; run this script through "
             "`cargo test -p crosstenant-sandbox --test microsoft_clients`")
    return value


def ran(dist, check):
    """Prints which client, at which version, runs which check."""
    print(f"client: {dist} {importlib.metadata.version(dist)}  check: {check}  "
          f"python: {sys.version.split()[0]}", flush=True)


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def ok(message):
    print(f"PASS: {message}", flush=True)


def expect(condition, message):
    if not condition:
        fail(message)


def claims(token):
    """A JWT's payload, NOT verified: only to assert what the sandbox issued."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def header(token):
    """A JWT's header, NOT verified."""
    part = token.split(".")[0]
    part += "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part))


def tls_context():
    """A default (verifying) TLS context trusting the sandbox CA."""
    return ssl.create_default_context(cafile=env("SBX_CA_FILE"))


def authority_host():
    """`https://127.0.0.1:{port}/`, with its trailing slash."""
    host = env("AZURE_AUTHORITY_HOST")
    return host if host.endswith("/") else host + "/"


def main(checks):
    """Runs the check named by the first argument."""
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        fail(f"usage: {sys.argv[0]} <check>, one of: {', '.join(checks)}")
    checks[sys.argv[1]]()
