//! `?watch=true`: a chunked stream of `{"type":..,"object":..}` lines (kubectl-compat.md §2).
//! Without a resourceVersion (or with 0) the stream starts with the current objects as ADDED
//! events; with one it carries the changes after it; a version older than the history gets an
//! ERROR event with a 410 Status and the stream ends, and the client relists.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use futures::StreamExt;
use serde_json::{json, Value};

use super::{table, State};
use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;
use crate::apiserver::ListOptions;

fn line(type_: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn error_line(e: &ApiError) -> Bytes {
    let mut status = serde_json::to_value(e.to_status()).unwrap_or_else(|_| json!({}));
    status["kind"] = json!("Status");
    status["apiVersion"] = json!("v1");
    status["metadata"] = json!({});
    line("ERROR", &status)
}

pub(super) async fn serve(
    state: &State,
    res: &'static ResourceInfo,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    opts: ListOptions,
    tables: bool,
) -> Result<HttpResponse, ApiError> {
    // Table watches carry each object as a one-row Table, the column definitions in the
    // first event only (as upstream).
    let mut first = true;
    let mut render = move |type_: &str, object: &Value| {
        if !tables {
            return line(type_, object);
        }
        let t = table::table(
            res,
            std::slice::from_ref(object),
            None,
            super::now_seconds(),
            first,
        );
        first = false;
        line(type_, &t)
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("timeoutSeconds: not a number of seconds: {t:?}"))
        })?),
        None => state.config.watch_timeout,
    };
    let rv = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let (initial, after) = if rv.is_empty() || rv == "0" {
        let (items, revision) = state.api.list(res, namespace, &opts).await?;
        let added: Vec<Bytes> = items.iter().map(|o| render("ADDED", o)).collect();
        (added, revision)
    } else {
        let after = rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: not a valid version: {rv:?}"))
        })?;
        (Vec::new(), after)
    };
    let events = match state.api.watch(res, namespace, after, opts).await {
        Ok(w) => w
            .scan(false, move |ended, item| {
                let out = if *ended {
                    None
                } else {
                    Some(match item {
                        Ok(ev) => render(ev.type_.as_str(), &ev.object),
                        Err(e) => {
                            *ended = true;
                            error_line(&e)
                        }
                    })
                };
                futures::future::ready(out)
            })
            .boxed_local(),
        // k8s: a watch from a compacted version is answered 200 with one ERROR event.
        Err(e) if e.code == 410 => futures::stream::iter([error_line(&e)]).boxed_local(),
        Err(e) => return Err(e),
    };
    let stream = futures::stream::iter(initial)
        .chain(events)
        .take_until(tokio::time::sleep(timeout))
        .map(Ok::<_, actix_web::Error>);
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream))
}
