//! The JSON documents the emulator answers with, shaped like Looker 4.0's.

use serde::Serialize;
use serde_json::{json, Value};

use super::{timestamp, Api3KeyInfo, EmulatorUser, LiveTokenInfo, TokenKind};

/// Where Looker's error bodies point. Deliberately not a
/// `…/docs/r/err/…` address: the Python SDK follows those with a request
/// to Looker's CDN to fetch error documentation.
pub(crate) const DOCUMENTATION_URL: &str = "https://cloud.google.com/looker/docs/";

/// The release the emulator claims to be (`/versions`).
const LOOKER_RELEASE: &str = "25.18.0";

/// The id and name of Looker's built-in Admin role.
const ADMIN_ROLE: (&str, &str) = ("2", "Admin");
/// The role every other emulated user gets.
const USER_ROLE: (&str, &str) = ("3", "User");

/// Looker's error body, `{"message":…,"documentation_url":…}`, in that order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    documentation_url: &'a str,
}

/// Looker's login answer, its fields in Looker's order.
#[derive(Serialize)]
struct AccessToken<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    token_type: &'a str,
    expires_in: i64,
    refresh_token: Option<&'a str>,
}

/// `{"message": …, "documentation_url": …}`, Looker's error body.
pub(crate) fn error(message: &str) -> String {
    to_string(&ErrorBody { message, documentation_url: DOCUMENTATION_URL })
}

/// The answer to a login; `None` leaves `access_token` out (a fault).
pub(crate) fn access_token(token: Option<&str>, expires_in: i64) -> String {
    to_string(&AccessToken { access_token: token, token_type: "Bearer", expires_in, refresh_token: None })
}

/// Serializes a value that cannot fail to serialize (no maps with
/// non-string keys, no failing `Serialize` impls).
pub(crate) fn to_string<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}

/// The role ids of a user.
pub(crate) fn role_ids(user: &EmulatorUser) -> Vec<&'static str> {
    if user.is_admin {
        vec![ADMIN_ROLE.0]
    } else {
        vec![USER_ROLE.0]
    }
}

/// Splits a display name into Looker's first and last name.
fn split_name(display_name: &str) -> (&str, &str) {
    let trimmed = display_name.trim();
    match trimmed.split_once(char::is_whitespace) {
        Some((first, last)) => (first, last.trim_start()),
        None => (trimmed, ""),
    }
}

/// Looker's CredentialsApi3; with `client_secret` it is the
/// CreateCredentialsApi3 that only the creation answers with.
pub(crate) fn credentials_api3(base_url: &str, key: &Api3KeyInfo, client_secret: Option<&str>) -> Value {
    let mut value = json!({
        "can": {},
        "id": key.id,
        "client_id": key.client_id,
        "created_at": timestamp::looker(key.created_at),
        "is_disabled": false,
        "type": "api3",
        "purpose": key.purpose,
        "url": format!("{base_url}/api/4.0/users/{}/credentials_api3/{}", key.user_id, key.id),
    });
    if let (Some(secret), Value::Object(map)) = (client_secret, &mut value) {
        map.insert("client_secret".to_owned(), Value::from(secret));
    }
    value
}

/// `GET /api/4.0/user` and `GET /api/4.0/users/{id}`.
pub(crate) fn user(base_url: &str, user: &EmulatorUser, keys: &[Api3KeyInfo]) -> Value {
    let (first_name, last_name) = split_name(&user.display_name);
    let url = format!("{base_url}/api/4.0/users/{}", user.id);
    let credentials_api3: Vec<Value> = keys.iter().map(|k| credentials_api3(base_url, k, None)).collect();
    json!({
        "can": {
            "show": true,
            "index": true,
            "show_details": true,
            "index_details": true,
            "sudo": user.is_admin,
        },
        "avatar_url": format!("https://gravatar.lookercdn.com/avatar/{}?s=156&d=blank", user.id),
        "avatar_url_without_sizing": format!("https://gravatar.lookercdn.com/avatar/{}?d=blank", user.id),
        "credentials_api3": credentials_api3,
        "credentials_email": null,
        "credentials_embed": [],
        "credentials_google": null,
        "credentials_ldap": null,
        "credentials_looker_openid": null,
        "credentials_oidc": null,
        "credentials_saml": null,
        "credentials_totp": null,
        "display_name": user.display_name,
        "email": user.email,
        "embed_group_space_id": null,
        "first_name": first_name,
        "group_ids": ["1"],
        "home_folder_id": "1",
        "id": user.id,
        "is_disabled": false,
        "last_name": last_name,
        "locale": "en",
        "looker_versions": [LOOKER_RELEASE],
        "models_dir_validated": null,
        "personal_folder_id": "2",
        "presumed_looker_employee": false,
        "role_ids": role_ids(user),
        "sessions": [],
        "ui_state": null,
        "verified_looker_employee": false,
        "roles_externally_managed": false,
        "allow_direct_roles": true,
        "allow_normal_group_membership": true,
        "allow_roles_from_normal_groups": true,
        "embed_group_folder_id": null,
        "is_service_account": false,
        "is_embed_user": false,
        "url": url,
    })
}

/// `GET /api/4.0/users/{id}/roles`.
pub(crate) fn roles(base_url: &str, user: &EmulatorUser) -> Value {
    let (id, name) = if user.is_admin { ADMIN_ROLE } else { USER_ROLE };
    let (all_access, permissions) = if user.is_admin {
        (true, vec!["administer", "access_data", "see_looks", "explore"])
    } else {
        (false, vec!["access_data", "see_looks", "see_user_dashboards", "explore"])
    };
    json!([{
        "can": { "show": true, "index": true, "update": user.is_admin },
        "id": id,
        "name": name,
        "permission_set": {
            "can": { "show": true, "index": true },
            "all_access": all_access,
            "built_in": true,
            "id": id,
            "name": name,
            "permissions": permissions,
            "url": format!("{base_url}/api/4.0/permission_sets/{id}"),
        },
        "permission_set_id": id,
        "model_set": {
            "can": { "show": true, "index": true },
            "all_access": true,
            "built_in": true,
            "id": "1",
            "models": [],
            "name": "All",
            "url": format!("{base_url}/api/4.0/model_sets/1"),
        },
        "model_set_id": "1",
        "internal": false,
        "url": format!("{base_url}/api/4.0/roles/{id}"),
        "users_url": format!("{base_url}/api/4.0/roles/{id}/users"),
    }])
}

/// `GET /versions` and `GET /api/4.0/versions`: Looker's ApiVersion.
/// `api_server_url` is where the client reached the API (scheme and the
/// `Host` it sent), as Looker derives it.
pub(crate) fn versions(api_server_url: &str) -> Value {
    let version = json!({
        "version": "4.0",
        "full_version": format!("4.0.{}", LOOKER_RELEASE.rsplit_once('.').map_or(LOOKER_RELEASE, |(v, _)| v)),
        "status": "current",
        "swagger_url": format!("{api_server_url}/api/4.0/swagger.json"),
    });
    json!({
        "looker_release_version": LOOKER_RELEASE,
        "current_version": version,
        "supported_versions": [version],
        "api_server_url": api_server_url,
        "web_server_url": api_server_url,
    })
}

/// `GET /api/4.0/session`: Looker's ApiSession. `sudo_user_id` is the
/// actual user behind a sudo token (the admin who asked), null otherwise.
pub(crate) fn session(token: &LiveTokenInfo) -> Value {
    let sudo_user_id = match &token.kind {
        TokenKind::Sudo { admin_user_id } => Value::from(admin_user_id.as_str()),
        TokenKind::ApiLogin { .. } | TokenKind::OAuth { .. } => Value::Null,
    };
    json!({
        "can": { "view": true, "update": true },
        "workspace_id": token.workspace.as_str(),
        "sudo_user_id": sudo_user_id,
    })
}

/// OAuth's error body (RFC 6749 §5.2), what `POST /api/token` refuses with.
pub(crate) fn oauth_error(error: &str, description: &str) -> String {
    json!({ "error": error, "error_description": description }).to_string()
}

/// The token endpoint's answer, its fields in Looker's login order.
pub(crate) fn oauth_tokens(access_token: &str, expires_in: i64, refresh_token: &str) -> String {
    #[derive(Serialize)]
    struct Tokens<'a> {
        access_token: &'a str,
        token_type: &'a str,
        expires_in: i64,
        refresh_token: &'a str,
    }
    to_string(&Tokens { access_token, token_type: "Bearer", expires_in, refresh_token })
}

/// Looker's 422 body for a field that failed validation.
pub(crate) fn validation_error(field: &str, message: &str) -> String {
    json!({
        "message": "Validation Failed",
        "errors": [{
            "field": field,
            "code": "invalid",
            "message": message,
            "documentation_url": DOCUMENTATION_URL,
        }],
        "documentation_url": DOCUMENTATION_URL,
    })
    .to_string()
}

/// The one LookML model the emulator has.
const MODEL: &str = "thelook";

/// `(name, label, description)` of the model's explores.
const EXPLORES: [(&str, &str, &str); 2] =
    [("order_items", "Order Items", "One row per item ordered"), ("users", "Users", "One row per user")];

/// `GET /api/4.0/lookml_models/{name}`; `None` for another name.
pub(crate) fn lookml_model(name: &str) -> Option<Value> {
    if name != MODEL {
        return None;
    }
    let explores: Vec<Value> = EXPLORES
        .iter()
        .map(|(name, label, description)| {
            json!({
                "description": description,
                "label": label,
                "hidden": false,
                "group_label": "The Look",
                "name": name,
            })
        })
        .collect();
    Some(json!({
        "can": { "index": true, "show": true, "create": false, "update": false, "destroy": false },
        "allowed_db_connection_names": ["thelook"],
        "explores": explores,
        "has_content": true,
        "label": "The Look",
        "name": MODEL,
        "project_name": "thelook",
        "unlimited_db_connections": false,
    }))
}

/// `GET /api/4.0/lookml_models`.
pub(crate) fn lookml_models() -> Value {
    Value::Array(lookml_model(MODEL).into_iter().collect())
}

/// Keeps only the named top-level fields (Looker's `?fields=a,b`).
pub(crate) fn select_fields(value: Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields.filter(|f| !f.trim().is_empty()) else {
        return value;
    };
    match value {
        Value::Object(map) => {
            let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
            Value::Object(map.into_iter().filter(|(k, _)| wanted.contains(&k.as_str())).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_like_looker() {
        assert_eq!(split_name("Ada Lovelace"), ("Ada", "Lovelace"));
        assert_eq!(split_name("Ada  King Lovelace"), ("Ada", "King Lovelace"));
        assert_eq!(split_name("Ada"), ("Ada", ""));
    }

    #[test]
    fn fields_filter_keeps_only_named_keys() {
        let v = json!({"id": "1", "email": "a@b", "x": 1});
        assert_eq!(select_fields(v.clone(), Some("id, email")), json!({"id": "1", "email": "a@b"}));
        assert_eq!(select_fields(v.clone(), None), v);
    }

    #[test]
    fn bodies_keep_lookers_field_order() {
        assert_eq!(
            access_token(Some("t"), 5),
            r#"{"access_token":"t","token_type":"Bearer","expires_in":5,"refresh_token":null}"#
        );
        assert_eq!(
            access_token(None, 3600),
            r#"{"token_type":"Bearer","expires_in":3600,"refresh_token":null}"#
        );
        assert_eq!(
            error("Not found"),
            r#"{"message":"Not found","documentation_url":"https://cloud.google.com/looker/docs/"}"#
        );
    }
}
