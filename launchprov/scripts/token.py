"""launchprov-token CALLER: mint a bearer token for a calling service.

Prints the token (give it to the caller; it is shown once and stored nowhere) and the line to
add to ``launchprov.auth.tokens`` (or LAUNCHPROV_AUTH_TOKENS), which holds only its digest.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from launchprov.auth import digest
from launchprov.settings import CALLER_NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launchprov-token", description=__doc__.splitlines()[0])
    parser.add_argument("caller", help="the calling service's name: letters, digits, _ or -")
    args = parser.parse_args(argv)
    if not CALLER_NAME.match(args.caller):
        parser.error("caller names are 1-64 letters, digits, _ or -")
    token = secrets.token_urlsafe(32)
    print(f"token for {args.caller} (give it to the caller; it is not stored anywhere):")
    print(f"  {token}")
    print("add this line to launchprov.auth.tokens (or to LAUNCHPROV_AUTH_TOKENS):")
    print(f"  {args.caller} {digest(token)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
