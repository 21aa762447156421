"""`rlhf users …`: users and their API tokens."""

import sys
from typing import Annotated

import typer

from app.cli_support import JsonOpt, db_session, fail, output

users_app = typer.Typer(no_args_is_help=True, help="Users and API tokens.")


@users_app.command("create")
def users_create(
    email: str,
    role: Annotated[str, typer.Option(help="admin | labeler")] = "labeler",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    token: Annotated[bool, typer.Option(help="Also issue an API token (printed once).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a user."""
    from app.auth import service

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with db_session() as session:
        user = service.create_user(session=session, email=email, role=role, password=password)
        plain = service.create_token(session=session, user=user, name="cli")[1] if token else None
        session.commit()
        data = {"id": user.id, "email": user.email, "role": user.role, "token": plain}
    output(
        data,
        as_json,
        lambda d: (
            f"created user {d['id']} {d['email']} ({d['role']})"
            + (f"\napi token (shown once): {d['token']}" if d["token"] else "")
        ),
    )


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List users."""
    from app.auth import service

    with db_session() as session:
        data = [
            {"id": u.id, "email": u.email, "role": u.role, "active": u.is_active}
            for u in service.list_users(session=session)
        ]
    output(
        data,
        as_json,
        lambda d: "\n".join(
            f"{u['id']:4} {u['email']:32} {u['role']:8} {'active' if u['active'] else 'inactive'}"
            for u in d
        ),
    )


@users_app.command("update")
def users_update(
    email: str,
    role: Annotated[str | None, typer.Option(help="admin | labeler")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Activate or deactivate.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's role or active flag (the last active admin keeps both)."""
    from app.auth import service

    with db_session() as session:
        user = service.get_by_email(session=session, email=email)
        if user is None:
            fail(f"no user with email {email!r}")
        assert user is not None
        if role is not None:
            service.set_role(session=session, user=user, role=role)
        if active is not None:
            service.set_active(session=session, user=user, active=active)
        session.commit()
        data = {"id": user.id, "email": user.email, "role": user.role, "active": user.is_active}
    output(
        data,
        as_json,
        lambda d: f"{d['email']}: {d['role']}, {'active' if d['active'] else 'inactive'}",
    )
