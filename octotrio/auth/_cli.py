"""``octotrio user add NAME [--admin] [--password PW] [--config PATH]``: add or replace a user."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from ._config import ConfigError, UserRecord, load_config, new_api_key, save_config
from ._passwords import hash_password

DEFAULT_CONFIG = "octotrio.toml"


def config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config PATH``: the users/groups file, shared by ``serve`` and ``user``."""
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("OCTOTRIO_CONFIG", DEFAULT_CONFIG)),
        help=f"users, groups and access settings (TOML; default $OCTOTRIO_CONFIG, else ./{DEFAULT_CONFIG})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="user_command", required=True)
    add = actions.add_parser("add", help="add a user (or replace one of the same name)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="member of admins (and users)")
    add.add_argument(
        "--group", action="append", default=[], help="a group (admins, users, readonly); repeatable"
    )
    add.add_argument("--password", help="the password (default: asked for on the terminal)")
    config_argument(add)


def run_user_command(args: argparse.Namespace) -> int:
    """Add the user, write the file atomically, print the user's API key; 2 on a bad argument."""
    password = args.password if args.password is not None else getpass.getpass(f"Password for {args.name}: ")
    if not password:
        print("octotrio: the password must not be empty")
        return 2
    groups = set(args.group) | ({"admins", "users"} if args.admin else set()) or {"users"}
    user = UserRecord(
        name=args.name,
        password_hash=hash_password(password),
        groups=tuple(sorted(groups)),
        api_key=new_api_key(),
    )
    try:
        config = load_config(args.config).with_user(user)
        save_config(args.config, config)
    except ConfigError as error:
        print(f"octotrio: {error}")
        return 2
    print(f"user {user.name} ({', '.join(user.groups)}) saved to {args.config}\nAPI key: {user.api_key}")
    return 0
