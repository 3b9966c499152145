"""Checks the Looker API emulator against the official Python SDK.

Run by tests/python_sdk.rs with the emulator's address in the environment:

    LOOKERSDK_BASE_URL        the emulator, e.g. http://127.0.0.1:PORT
    LOOKERSDK_CLIENT_ID       a credential registered in the emulator
    LOOKERSDK_CLIENT_SECRET   its secret
    LOOKERSDK_VERIFY_SSL      false (plain http on loopback)
    EXPECT_USER_ID, EXPECT_DISPLAY_NAME, EXPECT_EMAIL, EXPECT_ADMIN (0/1)
                              what sdk.me() must return

One good session (login, me, user_roles, logout) and one login with a wrong
secret, which must raise the SDK's error. Exits 0 on success; otherwise
prints what went wrong on stderr and exits 1.
"""

import os
import sys
import traceback


def fail(message: str) -> "None":
    print(f"sdk_fidelity: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        fail(f"environment variable {name} is not set")
    return value


def main() -> None:
    # No looker.ini may leak in from the working directory.
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    try:
        import looker_sdk
        from looker_sdk import error as sdk_error
    except ImportError as exc:
        fail(f"cannot import looker_sdk ({exc}); run scripts/python-venv.sh")

    want_id = env("EXPECT_USER_ID")
    want_name = env("EXPECT_DISPLAY_NAME")
    want_email = env("EXPECT_EMAIL")
    want_admin = os.environ.get("EXPECT_ADMIN", "0") == "1"
    env("LOOKERSDK_BASE_URL")
    env("LOOKERSDK_CLIENT_ID")
    good_secret = env("LOOKERSDK_CLIENT_SECRET")

    # 1. A good session.
    sdk = looker_sdk.init40()
    me = sdk.me()
    check(sdk.auth.is_authenticated, "the SDK did not keep the token after me()")
    token = sdk.auth.token
    check(len(token.access_token) == 40, f"odd access token length {len(token.access_token)}")
    check(token.token_type == "Bearer", f"token_type is {token.token_type!r}")
    check(token.expires_in == 3600, f"expires_in is {token.expires_in!r}")
    check(me.id == want_id, f"me().id is {me.id!r}, want {want_id!r}")
    check(isinstance(me.id, str), "me().id is not a string")
    check(me.display_name == want_name, f"me().display_name is {me.display_name!r}")
    first, _, last = want_name.partition(" ")
    check(me.first_name == first, f"me().first_name is {me.first_name!r}")
    check(me.last_name == last, f"me().last_name is {me.last_name!r}")
    check(me.email == want_email, f"me().email is {me.email!r}")
    check(me.is_disabled is False, f"me().is_disabled is {me.is_disabled!r}")
    check(bool(me.role_ids), "me().role_ids is empty")
    check(all(isinstance(r, str) for r in me.role_ids), f"role ids not strings: {me.role_ids!r}")
    check(
        bool(me.credentials_api3)
        and me.credentials_api3[0].client_id == os.environ["LOOKERSDK_CLIENT_ID"],
        f"me().credentials_api3 is {me.credentials_api3!r}",
    )

    # A second call reuses the token: no second login.
    again = sdk.me(fields="id,email")
    check(again.id == want_id and again.email == want_email, "me(fields=...) lost fields")
    check(again.display_name is None, "me(fields='id,email') returned display_name")
    check(sdk.auth.token.access_token == token.access_token, "the SDK logged in twice")

    roles = sdk.user_roles(me.id)
    names = [r.name for r in roles]
    check([r.id for r in roles] == list(me.role_ids), f"user_roles ids {[r.id for r in roles]!r}")
    check(("Admin" in names) == want_admin, f"user_roles names {names!r}, admin={want_admin}")

    # An unknown user is the SDK's error, not a crash.
    try:
        sdk.user("999999")
    except sdk_error.SDKError as exc:
        check("Not found" in str(exc), f"user(999999) error lacks 'Not found': {exc}")
    else:
        fail("user('999999') did not raise SDKError")

    sdk.auth.logout()
    check(not sdk.auth.is_authenticated, "still authenticated after logout()")

    # 2. A wrong secret: the SDK's error carrying Looker's 404 body.
    os.environ["LOOKERSDK_CLIENT_SECRET"] = good_secret + "-wrong"
    bad = looker_sdk.init40()
    try:
        bad.me()
    except sdk_error.SDKError as exc:
        check("Not found" in str(exc), f"bad login error lacks 'Not found': {exc}")
    else:
        fail("me() with a wrong secret did not raise SDKError")
    os.environ["LOOKERSDK_CLIENT_SECRET"] = good_secret

    version = getattr(looker_sdk.sdk.constants, "sdk_version", "?")
    print(f"sdk_fidelity: ok (looker_sdk {version}, user {me.id}, roles {names})")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - any surprise is a failure with a trace
        traceback.print_exc()
        fail("unexpected exception (trace above)")
