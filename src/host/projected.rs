//! Projected volumes (k8s: pkg/volume/projected): one directory holding files from
//! ServiceAccount tokens (asked for with a TokenRequest, bound to the pod, renewed by
//! [`refresh`] as `kubelet::token` says), ConfigMaps, Secrets and the downward API — the
//! `kube-api-access-*` volume ServiceAccount admission adds gives `token`, `ca.crt` and
//! `namespace`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use k8s_openapi::api::core::v1::{KeyToPath, Pod, ProjectedVolumeSource};

use super::{sources, ApiClient};
use crate::component::ApiOp;
use crate::kubelet::runtime::StartError;
use crate::kubelet::token;

fn mount_error(message: String) -> StartError {
    StartError::new("CreateContainerConfigError", message)
}

/// `data`'s keys (or the `items` chosen) as (path, bytes).
fn select(
    data: Option<sources::Data>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    what: &str,
) -> Result<Vec<(String, Vec<u8>)>, StartError> {
    let data = match data {
        Some(d) => d,
        None if optional => return Ok(Vec::new()),
        None => return Err(mount_error(format!("{what} not found"))),
    };
    let Some(items) = items else {
        return Ok(data.into_iter().collect());
    };
    let mut out = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(v) => out.push((item.path.clone(), v.clone())),
            None if optional => {}
            None => {
                return Err(mount_error(format!(
                    "{what}: configured to use key {:?}, but it is not present",
                    item.key
                )))
            }
        }
    }
    Ok(out)
}

/// k8s: the downward API fields a volume may hold.
fn downward(pod: &Pod, path: &str) -> Result<String, StartError> {
    let m = &pod.metadata;
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let map = |m: &Option<BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    Ok(match path {
        "metadata.name" => s(&m.name),
        "metadata.namespace" => s(&m.namespace),
        "metadata.uid" => s(&m.uid),
        "metadata.labels" => map(&m.labels),
        "metadata.annotations" => map(&m.annotations),
        other => {
            return Err(mount_error(format!(
                "unsupported downwardAPI volume fieldPath {other:?}"
            )))
        }
    })
}

/// A pod's projected token: (token, expirationTimestamp in seconds, seconds asked for).
async fn request_token(
    api: &Rc<dyn ApiClient>,
    pod: &Pod,
    audience: Option<&str>,
    expiration_seconds: Option<i64>,
) -> Result<(String, i64, i64), String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let body = token::request(
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or(""),
        audience,
        expiration_seconds,
    );
    let op = ApiOp::CreateToken {
        namespace: ns,
        name: sa.clone(),
        body,
    };
    let got = api.execute(op).await.map_err(|e| {
        format!(
            "failed to fetch token for service account {sa:?}: {}",
            e.message
        )
    })?;
    let tok = got["status"]["token"].as_str().unwrap_or("").to_string();
    let expires = got["status"]["expirationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(0);
    let asked = got["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(expiration_seconds.unwrap_or(3600));
    if tok.is_empty() {
        return Err(format!("the TokenRequest for {sa:?} gave no token"));
    }
    Ok((tok, expires, asked))
}

/// The files of a projected volume, with the tokens' renewal times.
pub async fn files(
    api: &Rc<dyn ApiClient>,
    pod: &Pod,
    source: &ProjectedVolumeSource,
) -> Result<(BTreeMap<String, Vec<u8>>, Vec<Renewal>), StartError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let mut out = BTreeMap::new();
    let mut renewals = Vec::new();
    for p in source.sources.iter().flatten() {
        if let Some(t) = &p.service_account_token {
            let (tok, expires, asked) =
                request_token(api, pod, t.audience.as_deref(), t.expiration_seconds)
                    .await
                    .map_err(mount_error)?;
            out.insert(t.path.clone(), tok.into_bytes());
            renewals.push(Renewal {
                path: t.path.clone(),
                audience: t.audience.clone(),
                expiration_seconds: t.expiration_seconds,
                expires,
                asked,
            });
        }
        if let Some(cm) = &p.config_map {
            let data = sources::config_map(api, ns, &cm.name).await?;
            let what = format!("configmap {:?}", cm.name);
            out.extend(select(
                data,
                cm.items.as_ref(),
                cm.optional == Some(true),
                &what,
            )?);
        }
        if let Some(s) = &p.secret {
            let data = sources::secret(api, ns, &s.name).await?;
            let what = format!("secret {:?}", s.name);
            out.extend(select(
                data,
                s.items.as_ref(),
                s.optional == Some(true),
                &what,
            )?);
        }
        if let Some(d) = &p.downward_api {
            for item in d.items.iter().flatten() {
                let Some(f) = &item.field_ref else {
                    return Err(mount_error(format!(
                        "downwardAPI {:?}: only fieldRef is supported in volumes",
                        item.path
                    )));
                };
                out.insert(
                    item.path.clone(),
                    downward(pod, &f.field_path)?.into_bytes(),
                );
            }
        }
        if p.cluster_trust_bundle.is_some() {
            return Err(mount_error(
                "clusterTrustBundle projections are not supported".into(),
            ));
        }
    }
    Ok((out, renewals))
}

/// Makes the volume in `dir`, or keeps it as it is when an earlier container of the pod made
/// it and its tokens are being renewed: containers of one pod share the directory (it is
/// bind-mounted into each), so it is written in place, file by file, never removed and made
/// again under a running container.
pub async fn materialize(
    api: &Rc<dyn ApiClient>,
    pod: &Pod,
    source: &ProjectedVolumeSource,
    dir: &Path,
) -> Result<(), StartError> {
    let token_paths: Vec<PathBuf> = source
        .sources
        .iter()
        .flatten()
        .filter_map(|p| p.service_account_token.as_ref())
        .map(|t| dir.join(&t.path))
        .collect();
    let renewed = RENEWING.with(|s| token_paths.iter().all(|p| s.borrow().contains(p)));
    if dir.is_dir() && renewed {
        return Ok(());
    }
    let (files, renewals) = files(api, pod, source).await?;
    let io = |e: std::io::Error| mount_error(format!("projected volume {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mode = source.default_mode.unwrap_or(0o644) as u32;
    for (path, bytes) in &files {
        if !super::volumes::safe_relative(path) {
            return Err(mount_error(format!(
                "projected volume: invalid path {path:?}"
            )));
        }
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        write_atomically(&file, bytes, mode).map_err(io)?;
    }
    refresh(api.clone(), pod.clone(), dir, renewals);
    Ok(())
}

/// `bytes` into `file` by rename, so that a reader sees the old content or the new.
fn write_atomically(file: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = file.with_extension("gantry-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, file)
}

/// A token file to renew.
#[derive(Clone, Debug)]
pub struct Renewal {
    path: String,
    audience: Option<String>,
    expiration_seconds: Option<i64>,
    expires: i64,
    asked: i64,
}

thread_local! {
    /// The token files a renewal task looks after (one task per file).
    static RENEWING: RefCell<BTreeSet<PathBuf>> = const { RefCell::new(BTreeSet::new()) };
}

/// Keeps the token files in `dir` fresh while the directory exists (the pod's volumes are
/// removed with the pod), each renewed at `kubelet::token::refresh_at`.
pub fn refresh(api: Rc<dyn ApiClient>, pod: Pod, dir: &Path, renewals: Vec<Renewal>) {
    for mut r in renewals {
        let file = dir.join(&r.path);
        if !RENEWING.with(|s| s.borrow_mut().insert(file.clone())) {
            continue;
        }
        let (api, pod) = (api.clone(), pod.clone());
        tokio::task::spawn_local(async move {
            loop {
                // The clock's nanoseconds stand in for a random jitter.
                let jitter = (super::wall_clock().as_nanos() % 11) as i64;
                let at = token::refresh_at(r.expires, r.asked, jitter);
                let now_secs = || (super::wall_clock().as_nanos() / 1_000_000_000) as i64;
                // Checked every minute at least: the pod's volumes may be gone.
                let mut now = now_secs();
                let mut gone = false;
                while now < at {
                    let wait = (at - now).clamp(1, 60) as u64;
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                    gone = !file.parent().is_some_and(Path::exists);
                    if gone {
                        break;
                    }
                    now = now_secs();
                }
                if gone || !file.parent().is_some_and(Path::exists) {
                    break;
                }
                match request_token(&api, &pod, r.audience.as_deref(), r.expiration_seconds).await {
                    Ok((tok, expires, asked)) => {
                        let mode = std::fs::metadata(&file)
                            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
                            .unwrap_or(0o644);
                        let written = write_atomically(&file, tok.as_bytes(), mode & 0o777);
                        if let Err(e) = written {
                            tracing::info!("cannot renew the token {}: {e}", file.display());
                            break;
                        }
                        tracing::debug!("renewed the token {}", file.display());
                        (r.expires, r.asked) = (expires, asked);
                    }
                    // Tried again in about 10 s.
                    Err(e) => {
                        tracing::info!("cannot renew the token {}: {e}", file.display());
                        r.expires = now_secs() + 10 + token::MAX_JITTER_SECONDS;
                        r.asked = 0;
                    }
                }
            }
            RENEWING.with(|s| s.borrow_mut().remove(&file));
        });
    }
}
