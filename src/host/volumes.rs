//! A pod's volumes on the node (k8s: the volume manager): each is a directory under the node's
//! `pod-volumes/<pod uid>/<volume>` — emptyDir empty at first, configMap and secret holding one
//! file per key (or per `items` entry), hostPath the host's own directory — and a container's
//! volumeMounts say where it sees them (`subPath`, `readOnly`). The runtimes make them visible
//! at the mountPath (process: a bind mount in the container's mount namespace; docker: a bind).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use super::{sources, ApiClient};
use crate::kubelet::runtime::{Mount, StartError};

/// The directory holding a pod's volumes.
pub fn pod_dir(root: &Path, pod_uid: &str) -> PathBuf {
    root.join("pod-volumes").join(pod_uid)
}

fn mount_error(message: String) -> StartError {
    StartError::new("CreateContainerConfigError", message)
}

/// A relative path that stays inside its directory (k8s: validation of items' paths and
/// subPath: no `..`, not absolute).
pub(super) fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `data` into `dir` as files (all keys, or the `items` chosen), replacing what was
/// there, with `mode` (k8s: defaultMode 0644).
fn write_files(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    mode: Option<i32>,
    what: &str,
    optional: bool,
) -> Result<(), StartError> {
    let io = |e: std::io::Error| mount_error(format!("{what}: {e}"));
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let files: Vec<(String, &Vec<u8>, Option<i32>)> = match items {
        None => data.iter().map(|(k, v)| (k.clone(), v, None)).collect(),
        Some(items) => {
            let mut out = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(v) => out.push((item.path.clone(), v, item.mode)),
                    None if optional => {}
                    None => {
                        return Err(mount_error(format!(
                            "{what}: configured to use key {:?}, but it is not present",
                            item.key
                        )))
                    }
                }
            }
            out
        }
    };
    for (path, value, item_mode) in files {
        if !safe_relative(&path) {
            return Err(mount_error(format!("{what}: invalid path {path:?}")));
        }
        let file = dir.join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&file, value).map_err(io)?;
        let mode = item_mode.or(mode).unwrap_or(0o644) as u32;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    Ok(())
}

/// Makes one volume's directory; returns where it is.
async fn materialize(
    api: &Rc<dyn ApiClient>,
    root: &Path,
    pod: &Pod,
    volume: &Volume,
) -> Result<PathBuf, StartError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let dir = pod_dir(root, uid).join(&volume.name);
    let io = |e: std::io::Error| mount_error(format!("volume {:?}: {e}", volume.name));
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        match host.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(io)?,
            "Directory" if !path.is_dir() => {
                return Err(mount_error(format!(
                    "hostPath type check failed: {} is not a directory",
                    host.path
                )))
            }
            "File" if !path.is_file() => {
                return Err(mount_error(format!(
                    "hostPath type check failed: {} is not a file",
                    host.path
                )))
            }
            "FileOrCreate" if !path.exists() => {
                std::fs::write(&path, b"").map_err(io)?;
            }
            _ => {}
        }
        return Ok(path);
    }
    if volume.empty_dir.is_some() {
        std::fs::create_dir_all(&dir).map_err(io)?;
        return Ok(dir);
    }
    // A ConfigMap or a Secret: one file per key (or per item).
    let source = if let Some(cm) = &volume.config_map {
        let data = sources::config_map(api, ns, &cm.name).await?;
        let what = format!("configmap {:?}", cm.name);
        Some((what, data, cm.items.as_ref(), cm.default_mode, cm.optional))
    } else if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = sources::secret(api, ns, &name).await?;
        Some((
            format!("secret {name:?}"),
            data,
            s.items.as_ref(),
            s.default_mode,
            s.optional,
        ))
    } else {
        None
    };
    if let Some(projected) = &volume.projected {
        super::projected::materialize(api, pod, projected, &dir).await?;
        return Ok(dir);
    }
    if let Some((what, data, items, mode, optional)) = source {
        let optional = optional == Some(true);
        let data = match data {
            Some(data) => data,
            None if optional => BTreeMap::new(),
            None => return Err(mount_error(format!("{what} not found"))),
        };
        write_files(&dir, &data, items, mode, &what, optional)?;
        return Ok(dir);
    }
    Err(mount_error(format!(
        "volume {:?}: only emptyDir, hostPath, configMap, secret and projected volumes are supported",
        volume.name
    )))
}

/// The container's mounts, with the volumes they use made.
pub async fn prepare(
    api: &Rc<dyn ApiClient>,
    root: &Path,
    pod: &Pod,
    container: &Container,
) -> Result<Vec<Mount>, StartError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut made: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.iter().find(|v| v.name == vm.name) else {
            return Err(mount_error(format!(
                "cannot find volume {:?} to mount into container {:?}",
                vm.name, container.name
            )));
        };
        let base = match made.get(&vm.name) {
            Some(p) => p.clone(),
            None => {
                let p = materialize(api, root, pod, volume).await?;
                made.insert(vm.name.clone(), p.clone());
                p
            }
        };
        let host_path = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            None => base,
            Some(sub) if safe_relative(sub) => {
                let p = base.join(sub);
                if !p.exists() {
                    std::fs::create_dir_all(&p)
                        .map_err(|e| mount_error(format!("subPath {sub:?}: {e}")))?;
                }
                p
            }
            Some(sub) => return Err(mount_error(format!("invalid subPath {sub:?}"))),
        };
        mounts.push(Mount {
            volume: vm.name.clone(),
            host_path,
            container_path: vm.mount_path.clone(),
            read_only: vm.read_only == Some(true),
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_stay_inside() {
        for (p, ok) in [
            ("a", true),
            ("a/b.txt", true),
            ("../x", false),
            ("/etc/passwd", false),
            ("a/../../x", false),
            ("", false),
        ] {
            assert_eq!(safe_relative(p), ok, "{p}");
        }
    }

    #[test]
    fn files_from_keys_and_items() {
        let dir = tempfile::tempdir().unwrap();
        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        let all = dir.path().join("all");
        write_files(&all, &data, None, Some(0o600), "cm", false).unwrap();
        assert_eq!(std::fs::read(all.join("b")).unwrap(), b"2");
        let mode = std::fs::metadata(all.join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let items = vec![KeyToPath {
            key: "a".into(),
            path: "sub/x".into(),
            mode: None,
        }];
        let some = dir.path().join("some");
        write_files(&some, &data, Some(&items), None, "cm", false).unwrap();
        assert_eq!(std::fs::read(some.join("sub/x")).unwrap(), b"1");
        assert!(!some.join("b").exists());

        let missing = vec![KeyToPath {
            key: "zz".into(),
            path: "x".into(),
            mode: None,
        }];
        let e = write_files(&some, &data, Some(&missing), None, "cm", false).unwrap_err();
        assert!(e.message.contains("zz"), "{}", e.message);
        write_files(&some, &data, Some(&missing), None, "cm", true).unwrap();
    }
}
