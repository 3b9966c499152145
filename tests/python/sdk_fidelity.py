"""Checks the Looker API emulator against the official Python SDK.

Run by tests/python_sdk.rs with the emulator's address in the environment:

    LOOKERSDK_BASE_URL        the emulator, e.g. http://127.0.0.1:PORT
    LOOKERSDK_CLIENT_ID       a credential registered in the emulator
    LOOKERSDK_CLIENT_SECRET   its secret
    LOOKERSDK_VERIFY_SSL      false (plain http on loopback)
    EXPECT_USER_ID, EXPECT_DISPLAY_NAME, EXPECT_EMAIL, EXPECT_ADMIN (0/1)
                              what sdk.me() must return

    EXPECT_SUDO_ID, EXPECT_SUDO_NAME
                              a (non-admin) user the admin may sudo as
    DOWNLOAD_BYTES            how many bytes to read from the large-body route

One good session (login, me, user_roles; session, update_session to dev and
a refused bad workspace; versions; a large download; login_user sudo, me as
that user, logout back to the API user; logout) and one login with a wrong
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
        from looker_sdk.sdk.api40 import models as models40
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

    # The session: production at first, dev after update_session; a
    # workspace Looker does not have is the SDK's error (422).
    session = sdk.session()
    check(session.workspace_id == "production", f"session().workspace_id is {session.workspace_id!r}")
    check(session.sudo_user_id is None, f"session().sudo_user_id is {session.sudo_user_id!r}")
    updated = sdk.update_session(models40.WriteApiSession(workspace_id="dev"))
    check(updated.workspace_id == "dev", f"update_session answered {updated.workspace_id!r}")
    check(sdk.session().workspace_id == "dev", "session() is not dev after update_session")
    try:
        sdk.update_session(models40.WriteApiSession(workspace_id="staging"))
    except sdk_error.SDKError as exc:
        check("Validation Failed" in str(exc), f"bad workspace error lacks 'Validation Failed': {exc}")
    else:
        fail("update_session(workspace_id='staging') did not raise SDKError")

    # The API's versions, addressed like the SDK's base URL.
    versions = sdk.versions()
    check(versions.looker_release_version == "25.18.0", f"versions() release {versions.looker_release_version!r}")
    check(versions.current_version.version == "4.0", f"current_version {versions.current_version!r}")
    check(
        versions.api_server_url == os.environ["LOOKERSDK_BASE_URL"],
        f"versions().api_server_url is {versions.api_server_url!r}",
    )

    # A large body through the SDK's own request path.
    n = int(env("DOWNLOAD_BYTES"))
    data = sdk.get("/emulator/download", structure=bytes, query_params={"bytes": n})
    check(isinstance(data, bytes), f"download returned {type(data).__name__}")
    check(len(data) == n, f"download returned {len(data)} bytes, want {n}")
    check(data == bytes(i % 251 for i in range(n)), "download bytes are not the pattern")

    # Sudo: login_user, calls as that user, logout() back to the API user.
    sudo_id = env("EXPECT_SUDO_ID")
    sdk.auth.login_user(sudo_id)
    other = sdk.me()
    check(other.id == sudo_id, f"me() under sudo is {other.id!r}, want {sudo_id!r}")
    check(other.display_name == env("EXPECT_SUDO_NAME"), f"me() under sudo is {other.display_name!r}")
    sudo_session = sdk.session()
    check(sudo_session.sudo_user_id == want_id, f"sudo session().sudo_user_id is {sudo_session.sudo_user_id!r}")
    check(sudo_session.workspace_id == "production", "the sudo token did not start in production")
    sdk.auth.logout()
    check(sdk.me().id == want_id, "logout() of the sudo token did not return to the API user")
    check(sdk.session().workspace_id == "dev", "the API user's token lost its dev workspace")

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
