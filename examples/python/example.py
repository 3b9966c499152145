"""Who am I? The official Looker SDK, with its token from looker-agent.

    python examples/python/example.py [PROFILE]

Needs looker_sdk (`pip install looker_sdk`) and a running looker-agent with the
profile (`lookerctl status`). No client_id or client_secret is configured here:
the agent holds them. Prints the user's id, name and email, one per line.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import looker_agent_auth  # noqa: E402


def main() -> int:
    profile = sys.argv[1] if len(sys.argv) > 1 else None
    try:
        sdk = looker_agent_auth.init40(profile)
        me = looker_agent_auth.retry_on_401(sdk, sdk.me)
        # A second call: the SDK reuses the agent's token, it does not log in.
        again = looker_agent_auth.retry_on_401(sdk, sdk.me)
    except looker_agent_auth.AgentError as exc:
        print(f"example: {exc}", file=sys.stderr)
        return 1
    assert again.id == me.id
    print(f"id: {me.id}")
    print(f"name: {me.display_name}")
    print(f"email: {me.email}")
    # Forgets the token here; the agent keeps it for other processes.
    sdk.auth.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
