//! `/api/4.0/users/{id}/credentials_api3[/{key_id}]`: list, create, show and
//! delete API3 keys, as Looker answers them.

use hyper::body::Body;
use hyper::{Method, Request, StatusCode};
use serde_json::Value;

use bytes::Bytes;

use super::api3::Api3Refusal;
use super::handler::{
    bearer, delay_then_drop, empty, error, fault_status, json, query_param, read_small_body, Answer, Ctx,
    Dropped,
};
use super::{model, OneShotFault};

/// `(user_id, key_id)` of a `credentials_api3` path.
pub(crate) fn parse_path(path: &str) -> Option<(&str, Option<&str>)> {
    let (user_id, tail) = path.strip_prefix("/api/4.0/users/")?.split_once('/')?;
    let tail = tail.strip_prefix("credentials_api3")?;
    if user_id.is_empty() {
        return None;
    }
    if tail.is_empty() {
        return Some((user_id, None));
    }
    let key_id = tail.strip_prefix('/')?;
    (!key_id.is_empty() && !key_id.contains('/')).then_some((user_id, Some(key_id)))
}

/// One `credentials_api3` request. An API call as far as the faults go
/// (`api_delay`, `drop_connections`), plus the one-shot create and delete
/// faults, met only by a request that passed the permission check.
pub(crate) async fn handle<B>(
    ctx: &Ctx,
    req: Request<B>,
    method: &Method,
    user_id: &str,
    key_id: Option<&str>,
) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    delay_then_drop(ctx, |f| f.api_delay).await?;
    let known = matches!(
        (method, key_id),
        (&Method::GET | &Method::HEAD, _) | (&Method::POST, None) | (&Method::DELETE, Some(_))
    );
    if !known {
        return Ok(error(StatusCode::NOT_FOUND));
    }
    let Some(token) = bearer(&req) else {
        return Ok(error(StatusCode::UNAUTHORIZED));
    };
    let user = match ctx.state.api3_access(&token, user_id) {
        Ok(user) => user,
        Err(Api3Refusal::Unauthenticated) => return Ok(error(StatusCode::UNAUTHORIZED)),
        Err(Api3Refusal::Forbidden) => return Ok(error(StatusCode::FORBIDDEN)),
        Err(Api3Refusal::UnknownUser) => return Ok(error(StatusCode::NOT_FOUND)),
    };
    let fields = query_param(&req, "fields");
    let fields = fields.as_deref();
    match (method, key_id) {
        (&Method::POST, None) => {
            let Some(body) = read_small_body(req).await else {
                return Ok(error(StatusCode::BAD_REQUEST));
            };
            let purpose = if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(map)) => map.get("purpose").and_then(Value::as_str).map(str::to_owned),
                    _ => return Ok(error(StatusCode::BAD_REQUEST)),
                }
            };
            let fault = ctx.state.take_api3_create_fault();
            if let Some(OneShotFault::Status(status)) = fault {
                return Ok(fault_status(status));
            }
            let (key, secret) = ctx.state.create_api3_key(user, purpose);
            tracing::debug!(user_id, key_id = %key.id, "emulator: API3 key created");
            if fault == Some(OneShotFault::DropAfterApplying) {
                return Err(Dropped);
            }
            ctx.state.count_api_call();
            let body = model::credentials_api3(&ctx.base_url, &key, Some(&secret));
            Ok(json(StatusCode::OK, model::select_fields(body, fields).to_string()))
        }
        (&Method::DELETE, Some(key_id)) => {
            let fault = ctx.state.take_api3_delete_fault();
            if let Some(OneShotFault::Status(status)) = fault {
                return Ok(fault_status(status));
            }
            if !ctx.state.delete_api3_key(&user.id, key_id) {
                return Ok(error(StatusCode::NOT_FOUND));
            }
            tracing::debug!(user_id, key_id, "emulator: API3 key deleted");
            if fault == Some(OneShotFault::DropAfterApplying) {
                return Err(Dropped);
            }
            ctx.state.count_api_call();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (_, Some(key_id)) => match ctx.state.api3_key(&user.id, key_id) {
            Some(key) => {
                ctx.state.count_api_call();
                let body = model::credentials_api3(&ctx.base_url, &key, None);
                Ok(json(StatusCode::OK, model::select_fields(body, fields).to_string()))
            }
            None => Ok(error(StatusCode::NOT_FOUND)),
        },
        (_, None) => {
            ctx.state.count_api_call();
            let keys: Vec<Value> = ctx
                .state
                .api3_keys(&user.id)
                .iter()
                .map(|k| model::select_fields(model::credentials_api3(&ctx.base_url, k, None), fields))
                .collect();
            Ok(json(StatusCode::OK, Value::Array(keys).to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("/api/4.0/users/7/credentials_api3"), Some(("7", None)));
        assert_eq!(parse_path("/api/4.0/users/7/credentials_api3/12"), Some(("7", Some("12"))));
        assert_eq!(parse_path("/api/4.0/users/7/credentials_api3/"), None);
        assert_eq!(parse_path("/api/4.0/users/7/credentials_api3/1/x"), None);
        assert_eq!(parse_path("/api/4.0/users//credentials_api3"), None);
        assert_eq!(parse_path("/api/4.0/users/7/credentials_api3x"), None);
        assert_eq!(parse_path("/api/4.0/users/7/roles"), None);
    }
}
