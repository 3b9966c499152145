// Runs the official @looker/sdk-node, unmodified, against a Looker base URL.
// Run by tests/clients_fidelity.rs (and the gateway tests) with NODE_PATH
// pointing at the installed node_modules and the usual LOOKERSDK_* variables:
//
//   LOOKERSDK_BASE_URL, LOOKERSDK_CLIENT_ID, LOOKERSDK_CLIENT_SECRET,
//   LOOKERSDK_VERIFY_SSL=false
//
// The README's pattern: log in (implicitly), me(), session(),
// update_session({workspace_id: 'dev'}), session() again, then
// authSession.logout(). Prints one JSON line with what it saw on stdout and
// exits 0; any failure is a message on stderr and exit status 1.
'use strict';

const { LookerNodeSDK } = require('@looker/sdk-node');

async function main() {
  const sdk = LookerNodeSDK.init40();
  const me = await sdk.ok(sdk.me());
  const before = await sdk.ok(sdk.session());
  const updated = await sdk.ok(sdk.update_session({ workspace_id: 'dev' }));
  const after = await sdk.ok(sdk.session());
  // Read now: logout() resets the token object in place.
  const token = sdk.authSession.activeToken;
  const tokenType = token ? token.token_type : null;
  const tokenLength = token && token.access_token ? token.access_token.length : 0;
  const loggedOut = await sdk.authSession.logout();
  console.log(
    JSON.stringify({
      me_id: me.id,
      me_display_name: me.display_name,
      workspace_before: before.workspace_id,
      workspace_updated: updated.workspace_id,
      workspace_after: after.workspace_id,
      sudo_user_id: after.sudo_user_id === undefined ? null : after.sudo_user_id,
      token_type: tokenType,
      token_length: tokenLength,
      logged_out: loggedOut,
      authenticated_after_logout: sdk.authSession.isAuthenticated(),
    }),
  );
}

main().catch((err) => {
  console.error(`node_sdk.js: FAIL: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
