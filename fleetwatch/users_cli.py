"""``fleetwatch users``: people, their roles, passwords and personal API tokens.

The first admin is made with the database owner's credentials (``users add NAME --role
admin`` while no active admin exists); everything after that is an admin's, acting as
themselves (FLEETWATCH_TOKEN or ``--as``). Passwords are typed at a prompt, or piped one per
line with ``--password-stdin``; never on the command line.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import psycopg

from fleetwatch.acting import acts, add_identity, connect, read_secret

if TYPE_CHECKING:
    from access import Identity

_ROLES = ("viewer", "operator", "admin")


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``users`` command and its actions to the top-level parser."""
    users = sub.add_parser(
        "users",
        help="people who sign in: add, list, set-role, disable, passwd, tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = users.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add a person (the first one: an admin)")
    add.add_argument("username")
    add.add_argument("--email", required=True)
    add.add_argument("--role", choices=_ROLES, default="viewer")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the new password from stdin"
    )
    add_identity(add)
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="every person and their role")
    listing.set_defaults(handler=_list)

    role = actions.add_parser("set-role", help="change a person's role")
    role.add_argument("username")
    role.add_argument("role", choices=_ROLES)
    add_identity(role)
    role.set_defaults(handler=acts(_set_role))

    for name, active in (("disable", False), ("enable", True)):
        toggle = actions.add_parser(name, help=f"{name} a person (their tokens too)")
        toggle.add_argument("username")
        add_identity(toggle)
        toggle.set_defaults(handler=acts(_set_active), active=active)

    passwd = actions.add_parser("passwd", help="change a password (your own, or as an admin)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    add_identity(passwd)
    passwd.set_defaults(handler=acts(_passwd))

    unlock = actions.add_parser("unlock", help="end a lock-out after failed sign-ins")
    unlock.add_argument("username")
    add_identity(unlock)
    unlock.set_defaults(handler=acts(_unlock))

    demo = actions.add_parser(
        "demo", help="(demo only) make or reset demo-admin, demo-operator, demo-viewer"
    )
    demo.set_defaults(handler=_demo)

    _tokens(actions)


def _tokens(actions: Any) -> None:  # noqa: ANN401
    token = actions.add_parser("token", help="personal API tokens: create, list, revoke")
    verbs = token.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = verbs.add_parser("create", help="a new token of yours (shown once)")
    create.add_argument("name")
    create.add_argument("--days", type=float, help="expires after this many days")
    add_identity(create)
    create.set_defaults(handler=acts(_token_create))
    listing = verbs.add_parser("list", help="your tokens (an admin's: everyone's)")
    add_identity(listing)
    listing.set_defaults(handler=acts(_token_list))
    revoke = verbs.add_parser("revoke", help="revoke a token")
    revoke.add_argument("name")
    revoke.add_argument("--user", help="whose token (admins only; default: yours)")
    add_identity(revoke)
    revoke.set_defaults(handler=acts(_token_revoke))


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return read_secret("")
    first = read_secret("new password: ")
    if read_secret("again: ") != first:
        from access import UserError  # noqa: PLC0415

        raise UserError("the two passwords differ")
    return first


def _add(args: argparse.Namespace) -> int:
    from access import Permission, UserRole, require  # noqa: PLC0415
    from access.users import add_user  # noqa: PLC0415
    from stores.postgres import people_store  # noqa: PLC0415

    def add(_: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity | None) -> int:
        if who is not None:
            require(
                conn, who, Permission.MANAGE_USERS, f"add user {args.username}", category="user"
            )
        password = _new_password(args)
        row = add_user(
            conn, who, username=args.username, email=args.email, role=UserRole(args.role),
            password=password,
        )  # fmt: skip
        sys.stdout.write(f"added {row['username']} ({row['role']})\n")
        return 0

    with connect() as conn:
        first = people_store.count_active_admins(conn) == 0 and not args.acting_as
    if first:
        # No admin yet: the database owner makes the first one.
        return acts(add, anonymous=True)(args)
    return acts(add)(args)


def _list(_: argparse.Namespace) -> int:
    from stores.postgres import people_store  # noqa: PLC0415

    with connect() as conn:
        rows = people_store.list_users(conn)
    sys.stdout.write(f"{'username':24} {'role':9} {'active':6} {'last sign-in':20} email\n")
    for row in rows:
        last = row["last_sign_in_at"]
        shown = last.isoformat(timespec="seconds") if last else "-"
        sys.stdout.write(
            f"{row['username']:24} {row['role']:9} {'yes' if row['is_active'] else 'no':6} "
            f"{shown:20} {row['email']}\n"
        )
    return 0


def _set_role(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import UserRole  # noqa: PLC0415
    from access.users import set_role  # noqa: PLC0415

    row = set_role(conn, who, args.username, UserRole(args.role))
    sys.stdout.write(f"{row['username']} is now {row['role']}\n")
    return 0


def _set_active(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access.users import set_active  # noqa: PLC0415

    row = set_active(conn, who, args.username, args.active)
    sys.stdout.write(f"{row['username']} {'enabled' if row['is_active'] else 'disabled'}\n")
    return 0


def _passwd(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access.users import set_password  # noqa: PLC0415

    set_password(conn, who, args.username, _new_password(args))
    sys.stdout.write(f"password of {args.username} changed\n")
    return 0


def _unlock(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access.users import unlock  # noqa: PLC0415

    unlock(conn, who, args.username)
    sys.stdout.write(f"{args.username} may sign in again\n")
    return 0


def _demo(_: argparse.Namespace) -> int:
    from access.users import reset_demo_users  # noqa: PLC0415

    with connect() as conn:
        made = reset_demo_users(conn)
    for username, password in made.items():
        sys.stdout.write(f"{username:14} {password}\n")
    return 0


def _token_create(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access.users import create_token  # noqa: PLC0415

    secret = create_token(conn, who, args.name, days=args.days)
    sys.stderr.write(f"token {args.name} of {who.username}; it is shown this once:\n")
    sys.stdout.write(f"{secret}\n")
    return 0


def _token_list(_: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import Permission  # noqa: PLC0415
    from stores.postgres import people_store  # noqa: PLC0415

    mine = None if who.may(Permission.MANAGE_USERS) else who.user_id
    rows = people_store.list_tokens(conn, mine)
    sys.stdout.write(f"{'user':20} {'name':20} {'prefix':13} {'last used':20} state\n")
    for row in rows:
        used = row["last_used_at"]
        state = "revoked" if row["revoked_at"] else "live"
        sys.stdout.write(
            f"{row['username']:20} {row['name']:20} {row['prefix']:13} "
            f"{used.isoformat(timespec='seconds') if used else '-':20} {state}\n"
        )
    return 0


def _token_revoke(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access.users import revoke_token  # noqa: PLC0415

    if not revoke_token(conn, who, args.name, username=args.user):
        sys.stderr.write(f"fleetwatch: no live token {args.name}\n")
        return 1
    sys.stdout.write(f"token {args.name} revoked\n")
    return 0
