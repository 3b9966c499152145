"""An unmodified looker_sdk script that outlives an agent restart, run by tests/gateway.rs
under `lookerctl exec`.

It reads the user, writes "ready" to argv[1], waits until argv[2] (a fifo) is written
(the test restarts the agent meanwhile), reads the user again with the session it
already holds, logs out, and prints one JSON line.
"""
import json
import os
import sys

import looker_sdk

sdk = looker_sdk.init40()
first = sdk.me().id
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write("ready")
os.rename(tmp, sys.argv[1])
with open(sys.argv[2]) as f:
    f.read()
second = sdk.me().id
sdk.auth.logout()
print(json.dumps({"first": first, "second": second}))
