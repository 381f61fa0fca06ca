"""How a command says who runs it: a personal API token, or a name and password.

Automation sets FLEETWATCH_TOKEN to a personal token (``fleetwatch users token create``);
a person passes ``--as NAME`` and types their password at the prompt (or, without a
terminal, as the first line of standard input). Passwords never come from the command line,
where other users of the machine could read them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import psycopg

from fleetwatch.settings import PostgresSettings, load

if TYPE_CHECKING:
    from access import Identity

TOKEN_ENV: Final = "FLEETWATCH_TOKEN"  # noqa: S105 - the variable's name, not a token
_NO_ONE: Final = (
    f"say who you are: set {TOKEN_ENV} to a personal API token (fleetwatch users token "
    "create), or pass --as USERNAME to be asked for your password"
)

Acted = Callable[[argparse.Namespace, psycopg.Connection[Any], Any], int]
"""A handler that acts as a person: (arguments, connection, access.Identity) -> exit code
(the identity is None for the database owner)."""


def add_identity(parser: argparse.ArgumentParser) -> None:
    """Let ``parser``'s command act as a person (``--as``, or FLEETWATCH_TOKEN)."""
    parser.add_argument(
        "--as",
        dest="acting_as",
        metavar="USERNAME",
        help=f"act as this person, asked for their password (default: the token in {TOKEN_ENV})",
    )


def read_secret(prompt: str) -> str:
    """A secret from the terminal (not echoed), or the next line of a piped standard input."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def connect() -> psycopg.Connection[Any]:
    """An autocommit connection with the service's credentials."""
    return psycopg.connect(str(load(PostgresSettings).database_url), autocommit=True)


def person(conn: psycopg.Connection[Any], args: argparse.Namespace) -> Identity:
    """The person running this command.

    Raises:
        access.SignInError: no token and no --as, or they do not sign in.
    """
    from access import SignInError, identify_token, sign_in  # noqa: PLC0415

    name = getattr(args, "acting_as", None)
    if name:
        return sign_in(conn, name, read_secret(f"password of {name}: "), source="cli")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return identify_token(conn, token, source="cli")
    raise SignInError(_NO_ONE)


def acts(handler: Acted, *, anonymous: bool = False) -> Callable[[argparse.Namespace], int]:
    """``handler`` run as the person the command names (None with ``anonymous``: the
    database owner); refusals and failed sign-ins become a message and an exit code (3
    refused, 4 not signed in, 2 a bad request)."""

    def run(args: argparse.Namespace) -> int:
        from access import ForbiddenError, SignInError, UserError  # noqa: PLC0415

        try:
            with connect() as conn:
                return handler(args, conn, None if anonymous else person(conn, args))
        except ForbiddenError as exc:
            sys.stderr.write(f"refused: {exc}\n")
            return 3
        except SignInError as exc:
            sys.stderr.write(f"fleetwatch: not signed in: {exc}\n")
            return 4
        except UserError as exc:
            sys.stderr.write(f"fleetwatch: {exc}\n")
            return 2

    return run
