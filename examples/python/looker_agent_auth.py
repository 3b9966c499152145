"""Make the official Looker Python SDK (looker_sdk) take its tokens from looker-agent.

The SDK normally logs in itself with a client_id and client_secret read from
looker.ini or LOOKERSDK_* variables. With this module it holds no secret at all:
`AgentAuthSession` asks the agent's Unix socket for a token whenever it needs
one (`GET /v1/profiles/{profile}/token`), and never logs in or out of Looker
itself. The agent keeps the token fresh, shares it with every other local
process, and revokes it when it stops.

    import looker_agent_auth

    sdk = looker_agent_auth.init40("prod")      # profile; None = the agent's default
    print(sdk.me().display_name)

Standard library only (besides looker_sdk). The socket is LOOKER_AGENT_SOCKET,
else $XDG_RUNTIME_DIR/looker-agent/agent.sock, as for lookerctl.
"""

import http.client
import json
import os
import socket
import urllib.parse
from typing import Any, Dict, Optional

from looker_sdk import error
from looker_sdk.rtl import api_settings
from looker_sdk.rtl import auth_session
from looker_sdk.rtl import auth_token
from looker_sdk.rtl import requests_transport
from looker_sdk.rtl import serialize
from looker_sdk.rtl import transport
from looker_sdk.sdk.api40 import methods as methods40

#: The path segment that names the agent's default profile.
DEFAULT_PROFILE = "_"


class AgentError(error.SDKError):
    """The agent could not hand out a token. `code` is the socket API's error
    code (e.g. "unknown_profile", "credentials_rejected", "upstream_unavailable"),
    or "agent_unreachable" when nothing answers on the socket."""

    def __init__(self, code: str, message: str):
        super().__init__(f"looker-agent: {message} ({code})")
        self.code = code


def default_socket() -> str:
    """LOOKER_AGENT_SOCKET, else the agent's default socket path."""
    explicit = os.environ.get("LOOKER_AGENT_SOCKET")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.isabs(runtime):
        runtime = f"/tmp/looker-agent-{os.getuid()}"
    return os.path.join(runtime, "looker-agent", "agent.sock")


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket."""

    def __init__(self, path: str, timeout: float):
        super().__init__("agent", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AgentClient:
    """The part of looker-agent's socket API a Python program needs."""

    def __init__(
        self,
        profile: Optional[str] = None,
        credential: Optional[str] = None,
        socket_path: Optional[str] = None,
        timeout: float = 60.0,
    ):
        self.profile = profile or None
        self.credential = credential or None
        self.socket_path = socket_path or default_socket()
        self.timeout = timeout

    def _segment(self) -> str:
        return urllib.parse.quote(self.profile or DEFAULT_PROFILE, safe="")

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            try:
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                raise AgentError(
                    "agent_unreachable",
                    f"no agent answers at {self.socket_path} ({exc}); start looker-agent "
                    "or point LOOKER_AGENT_SOCKET at a running one",
                ) from None
        finally:
            conn.close()
        if 200 <= resp.status < 300:
            return json.loads(data) if data else None
        try:
            err = json.loads(data)["error"]
            raise AgentError(err.get("code", "error"), err.get("message", ""))
        except (ValueError, KeyError, TypeError):
            raise AgentError("error", f"HTTP {resp.status} from the agent") from None

    def token(self, min_ttl: int = 60) -> Dict[str, Any]:
        """The socket API's token object: access_token, token_type, expires_in,
        expires_at, profile, credential, base_url."""
        query = {"min_ttl": str(int(min_ttl))}
        if self.credential:
            query["credential"] = self.credential
        path = f"/v1/profiles/{self._segment()}/token?{urllib.parse.urlencode(query)}"
        return self._call("GET", path)

    def invalidate(self, access_token: str) -> None:
        """Tells the agent a token was refused (401), so it logs in anew."""
        self._call("POST", f"/v1/profiles/{self._segment()}/invalidate", {"access_token": access_token})


class AgentAuthSession(auth_session.AuthSession):
    """An AuthSession whose tokens come from looker-agent instead of a login.

    `authenticate()` (called by the SDK before every request) asks the agent
    again only when the token it holds is about to expire. `logout()` forgets
    the token locally and never revokes it: it belongs to the agent and is
    shared with other processes. Sudo (`login_user`) still works: the sudo
    token is obtained with the agent's token and logged out as usual.
    """

    def __init__(
        self,
        settings: api_settings.PApiSettings,
        transport_: transport.Transport,
        deserialize: serialize.TDeserialize,
        api_version: str,
        agent: AgentClient,
        min_ttl: int = 60,
    ):
        super().__init__(settings, transport_, deserialize, api_version)
        self.agent = agent
        self.min_ttl = min_ttl

    def _login(self, transport_options: transport.TransportOptions) -> None:
        t = self.agent.token(self.min_ttl)
        self.token = auth_token.AuthToken(
            auth_token.AccessToken(
                access_token=t["access_token"],
                token_type=t.get("token_type", "Bearer"),
                expires_in=int(t["expires_in"]),
            )
        )

    def _logout(
        self,
        sudo: bool = False,
        transport_options: Optional[transport.TransportOptions] = None,
    ) -> None:
        if sudo:
            super()._logout(sudo=True, transport_options=transport_options)
        else:
            self.token = auth_token.AuthToken()

    def invalidate(self) -> None:
        """After a 401: tell the agent the token was refused and forget it, so the
        next call gets a new one."""
        if self.token.access_token:
            self.agent.invalidate(self.token.access_token)
        self.token = auth_token.AuthToken()


class _AgentSettings(api_settings.ApiSettings):
    """SDK settings with no file, no environment and no credentials: the base
    URL comes from the agent."""

    def __init__(self, base_url: str, verify_ssl: bool, timeout: int):
        super().__init__(filename="", env_prefix=None)
        self.base_url = base_url
        self.verify_ssl = verify_ssl
        self.timeout = timeout

    def read_config(self) -> api_settings.SettingsConfig:
        return {"base_url": getattr(self, "base_url", ""), "verify_ssl": str(getattr(self, "verify_ssl", True))}


def init40(
    profile: Optional[str] = None,
    *,
    credential: Optional[str] = None,
    socket_path: Optional[str] = None,
    min_ttl: int = 60,
    verify_ssl: bool = True,
    timeout: int = 120,
) -> methods40.Looker40SDK:
    """A Looker40SDK for a looker-agent profile, like looker_sdk.init40() but with
    the agent's tokens. Raises AgentError when the agent cannot give a token."""
    agent = AgentClient(profile, credential, socket_path)
    first = agent.token(min_ttl)
    settings = _AgentSettings(first["base_url"], verify_ssl, timeout)
    transport_ = requests_transport.RequestsTransport.configure(settings)
    session = AgentAuthSession(settings, transport_, serialize.deserialize40, "4.0", agent, min_ttl)
    session.token = auth_token.AuthToken(
        auth_token.AccessToken(
            access_token=first["access_token"],
            token_type=first.get("token_type", "Bearer"),
            expires_in=int(first["expires_in"]),
        )
    )
    return methods40.Looker40SDK(session, serialize.deserialize40, serialize.serialize40, transport_, "4.0")


def is_auth_error(exc: BaseException) -> bool:
    """True for the SDK's error on a 401 (an expired or revoked token)."""
    return isinstance(exc, error.SDKError) and "Requires authentication" in str(exc)


def retry_on_401(sdk: methods40.Looker40SDK, call):
    """Runs `call()`; on a 401, has the agent replace the token and runs it once more."""
    try:
        return call()
    except error.SDKError as exc:
        if not is_auth_error(exc) or not isinstance(sdk.auth, AgentAuthSession):
            raise
        sdk.auth.invalidate()
        return call()
