//! `?watch=true`: a chunked stream of `{"type":..,"object":..}` lines (kubectl-compat.md §2),
//! served from the resource's shared watch cache (`hub.rs`). Without a resourceVersion (or with
//! 0) the stream starts with the current objects as ADDED events; with one it carries the
//! changes after it; a version older than the cache's history gets an ERROR event with a 410
//! Status and the stream ends, and the client relists. With `allowWatchBookmarks=true` the
//! stream says now and then, in a BOOKMARK event, up to which resourceVersion it is complete.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use futures::future::Either;
use futures::StreamExt;
use serde_json::{json, Value};

use super::hub::{From, Registration};
use super::{table, State};
use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;
use crate::apiserver::cacher::Filter;
use crate::apiserver::{ApiEvent, ListOptions};

fn line(type_: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn error_line(e: &ApiError) -> Bytes {
    line("ERROR", &super::respond::status(e))
}

pub(super) async fn serve(
    state: &State,
    res: &'static ResourceInfo,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    opts: ListOptions,
    tables: bool,
) -> Result<HttpResponse, ApiError> {
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
    let from = if rv.is_empty() || rv == "0" {
        From::Now
    } else {
        From::After(rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: not a valid version: {rv:?}"))
        })?)
    };
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true" || b == "1");
    let filter = Filter {
        namespace: namespace.filter(|n| !n.is_empty()).map(String::from),
        opts,
    };
    let stream = match state.hub.watch(&state.api, res, filter, from).await {
        Ok(registration) => {
            let interval = bookmarks.then_some(state.config.bookmark_interval);
            events(registration, res, tables, interval)
        }
        // k8s: a watch from a version older than the history is answered 200 with one ERROR
        // event.
        Err(e) if e.code == 410 => futures::stream::iter([error_line(&e)]).boxed_local(),
        Err(e) => return Err(e),
    };
    let stream = stream
        .take_until(actix_web::rt::time::sleep(timeout))
        .map(Ok::<_, actix_web::Error>);
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream))
}

/// Renders events; Table watches carry each object as a one-row Table, the column
/// definitions in the first event only (as upstream).
struct Render {
    res: &'static ResourceInfo,
    tables: bool,
    first: bool,
}

impl Render {
    fn event(&mut self, ev: &ApiEvent) -> Bytes {
        let (type_, object) = (ev.type_.as_str(), &*ev.object);
        if !self.tables {
            // The object is encoded once for all the watchers that get this event.
            let encoded = ev.decoded.get_or_encode(object);
            let mut out = Vec::with_capacity(encoded.len() + 32);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(type_.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            out.extend_from_slice(&encoded);
            out.extend_from_slice(b"}\n");
            return Bytes::from(out);
        }
        let now = super::now_seconds();
        let t = table::table(
            self.res,
            std::slice::from_ref(object),
            None,
            now,
            self.first,
        );
        self.first = false;
        line(type_, &t)
    }
}

/// The watcher's events as lines, and a bookmark every `bookmarks` if asked for.
fn events(
    registration: Registration,
    res: &'static ResourceInfo,
    tables: bool,
    bookmarks: Option<Duration>,
) -> futures::stream::LocalBoxStream<'static, Bytes> {
    let mut render = Render {
        res,
        tables,
        first: true,
    };
    let Some(every) = bookmarks else {
        return registration.map(move |ev| render.event(&ev)).boxed_local();
    };
    let start = actix_web::rt::time::Instant::now() + every;
    let mut interval = actix_web::rt::time::interval_at(start, every);
    let ticks = futures::stream::poll_fn(move |cx| interval.poll_tick(cx).map(Some));
    futures::stream::unfold(
        (registration, ticks.boxed_local(), render),
        |(mut reg, mut ticks, mut render)| async move {
            loop {
                match futures::future::select(reg.next(), ticks.next()).await {
                    Either::Left((Some(ev), _)) => {
                        let out = render.event(&ev);
                        return Some((out, (reg, ticks, render)));
                    }
                    Either::Left((None, _)) => return None,
                    Either::Right((_, pending)) => {
                        drop(pending);
                        if let Some(rv) = reg.bookmark() {
                            let object = json!({"kind": render.res.kind, "apiVersion": render.res.api_version(),
                                                "metadata": {"resourceVersion": rv.to_string()}});
                            return Some((line("BOOKMARK", &object), (reg, ticks, render)));
                        }
                    }
                }
            }
        },
    )
    .boxed_local()
}
