"""An unmodified looker_sdk script, run by tests/gateway.rs under `lookerctl exec`.

It logs in the SDK's own way (LOOKERSDK_* from the environment), reads the user and
its session, optionally sudoes to another user twice (login_user, logout back), and
logs out. It writes its whole environment to argv[1] (the test checks that neither
the real secret nor a real token is in it) and prints one JSON line.
"""
import json
import os
import sys

import looker_sdk

with open(sys.argv[1], "w") as f:
    json.dump(dict(os.environ), f)

sdk = looker_sdk.init40()
me = sdk.me()
out = {"me_id": me.id, "workspace": sdk.session().workspace_id}
if len(sys.argv) > 2:
    user = sys.argv[2]
    for n in (1, 2):
        sdk.auth.login_user(user)
        out[f"sudo_me_{n}"] = sdk.me().id
        sdk.auth.logout()  # back to the API user
        out[f"back_me_{n}"] = sdk.me().id
sdk.auth.logout()
print(json.dumps(out))
