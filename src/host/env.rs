//! A container's environment, as the kubelet makes it (k8s: kubelet_pods.go
//! makeEnvironmentVariables): envFrom sources first, then env in order, later entries winning;
//! `$(VAR)` refers to variables defined before it (`$$` is a literal `$`); values from the
//! downward API (fieldRef, resourceFieldRef), ConfigMaps and Secrets. A source that is missing
//! and not optional keeps the container from starting with CreateContainerConfigError.

use std::collections::BTreeMap;
use std::rc::Rc;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{sources, ApiClient};
use crate::kubelet::runtime::StartError;

/// What the downward API can tell a container beyond the pod object.
pub struct PodContext<'a> {
    pub pod: &'a Pod,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
}

fn config_error(message: String) -> StartError {
    StartError::new("CreateContainerConfigError", message)
}

/// ConfigMaps and Secrets fetched once per container start, as text.
struct Sources<'a> {
    api: &'a Rc<dyn ApiClient>,
    namespace: String,
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

fn text(data: Option<sources::Data>) -> Option<BTreeMap<String, String>> {
    data.map(|d| {
        d.into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    })
}

impl Sources<'_> {
    async fn config_map(
        &mut self,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, StartError> {
        if !self.config_maps.contains_key(name) {
            let data = sources::config_map(self.api, &self.namespace, name).await?;
            self.config_maps.insert(name.into(), text(data));
        }
        Ok(self.config_maps[name].as_ref())
    }

    async fn secret(
        &mut self,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, StartError> {
        if !self.secrets.contains_key(name) {
            let data = sources::secret(self.api, &self.namespace, name).await?;
            self.secrets.insert(name.into(), text(data));
        }
        Ok(self.secrets[name].as_ref())
    }
}

/// k8s: third_party/forked/golang/expansion — `$(VAR)` from `env`, `$$` escapes, anything
/// else is left as written.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            match r.find(')') {
                Some(end) => {
                    let name = &r[..end];
                    match env.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &r[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = r;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// k8s: pkg/fieldpath — the fields the downward API offers to env.
fn field(ctx: &PodContext<'_>, path: &str) -> Result<String, StartError> {
    let m = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let subscript = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(|k| {
                map.as_ref()
                    .and_then(|m| m.get(k))
                    .cloned()
                    .unwrap_or_default()
            })
    };
    if let Some(v) = subscript("metadata.labels['", &m.labels) {
        return Ok(v);
    }
    if let Some(v) = subscript("metadata.annotations['", &m.annotations) {
        return Ok(v);
    }
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    Ok(match path {
        "metadata.name" => s(&m.name),
        "metadata.namespace" => s(&m.namespace),
        "metadata.uid" => s(&m.uid),
        "spec.nodeName" => spec
            .map(|s| s.node_name.clone().unwrap_or_default())
            .unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.into(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.into(),
        other => {
            return Err(config_error(format!(
                "unsupported fieldRef fieldPath {other:?}"
            )))
        }
    })
}

/// k8s: resourceFieldRef — a limit or request of a container, in units of `divisor` rounded
/// up; an unset limit reports the node's allocatable, an unset request 0.
fn resource_field(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    node_allocatable: &BTreeMap<String, String>,
) -> Result<String, StartError> {
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| config_error(format!("unsupported resourceFieldRef {resource:?}")))?;
    let res = container.resources.as_ref();
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(config_error(format!(
                "unsupported resourceFieldRef {resource:?}"
            )))
        }
    };
    let value = map
        .and_then(|m| m.get(name))
        .map(|q| q.0.clone())
        .or_else(|| {
            (kind == "limits")
                .then(|| node_allocatable.get(name).cloned())
                .flatten()
        })
        .unwrap_or_else(|| "0".into());
    let milli = crate::api::quantity::parse(&value).unwrap_or(0);
    let div = divisor
        .and_then(crate::api::quantity::parse)
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    Ok(((milli + div - 1) / div).to_string())
}

/// The container's environment in order, and with `$(VAR)` expanded, then the Service
/// variables it does not set itself. k8s: makeEnvironmentVariables — `$(VAR)` in an env value
/// may name a Service variable, and envFrom and env win over them.
pub async fn container_env(
    api: &Rc<dyn ApiClient>,
    ctx: &PodContext<'_>,
    container: &Container,
    node_allocatable: &BTreeMap<String, String>,
    service_env: &[(String, String)],
) -> Result<Vec<(String, String)>, StartError> {
    let namespace = ctx.pod.metadata.namespace.clone().unwrap_or_default();
    let mut sources = Sources {
        api,
        namespace: namespace.clone(),
        config_maps: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    let services: BTreeMap<String, String> = service_env.iter().cloned().collect();
    let mut order: Vec<String> = Vec::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: String, v: String, env: &mut BTreeMap<String, String>| {
        if !env.contains_key(&k) {
            order.push(k.clone());
        }
        env.insert(k, v);
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name).await? {
                Some(data) => {
                    for (k, v) in data.clone() {
                        set(format!("{prefix}{k}"), v, &mut env);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(config_error(format!("configmap {:?} not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name).await? {
                Some(data) => {
                    for (k, v) in data.clone() {
                        set(format!("{prefix}{k}"), v, &mut env);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(config_error(format!("secret {:?} not found", r.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => {
                // k8s: MappingFuncFor(tmpEnv, serviceEnv) — the container's own first.
                let mut vars = services.clone();
                vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
                expand(var.value.as_deref().unwrap_or(""), &vars)
            }
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field(ctx, &f.field_path)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_field(
                        container,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                        node_allocatable,
                    )?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.config_map(&r.name).await? {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(config_error(format!(
                                    "couldn't find key {} in ConfigMap {namespace}/{}",
                                    r.key, r.name
                                )))
                            }
                        },
                        None if optional => continue,
                        None => {
                            return Err(config_error(format!("configmap {:?} not found", r.name)))
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.secret(&r.name).await? {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(config_error(format!(
                                    "couldn't find key {} in Secret {namespace}/{}",
                                    r.key, r.name
                                )))
                            }
                        },
                        None if optional => continue,
                        None => return Err(config_error(format!("secret {:?} not found", r.name))),
                    }
                } else {
                    String::new()
                }
            }
        };
        set(var.name.clone(), value, &mut env);
    }
    let own: Vec<(String, String)> = order
        .into_iter()
        .map(|k| {
            let v = env.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect();
    Ok(own
        .into_iter()
        .chain(
            service_env
                .iter()
                .filter(|(k, _)| !env.contains_key(k))
                .cloned(),
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let env: BTreeMap<String, String> =
            [("A".to_string(), "x".to_string()), ("B".into(), "y".into())].into();
        let cases = [
            ("$(A)", "x"),
            ("pre-$(A)-$(B)-post", "pre-x-y-post"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("cost $5", "cost $5"),
            ("$(A", "$(A"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env), want, "{input}");
        }
    }

    #[test]
    fn downward_api_fields() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"nodeName": "n1", "containers": []},
        }))
        .unwrap();
        let ctx = PodContext {
            pod: &pod,
            pod_ip: "127.1.0.2",
            host_ip: "127.0.0.1",
        };
        for (path, want) in [
            ("metadata.name", "web"),
            ("metadata.namespace", "prod"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "web"),
            ("metadata.annotations['a']", "b"),
            ("metadata.labels['none']", ""),
            ("spec.nodeName", "n1"),
            ("spec.serviceAccountName", "default"),
            ("status.podIP", "127.1.0.2"),
            ("status.hostIP", "127.0.0.1"),
        ] {
            assert_eq!(field(&ctx, path).unwrap(), want, "{path}");
        }
        let e = field(&ctx, "spec.bogus").unwrap_err();
        assert_eq!(e.reason, "CreateContainerConfigError");
    }

    #[test]
    fn resource_fields_round_up_by_divisor() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
        }))
        .unwrap();
        let node: BTreeMap<String, String> = [("cpu".to_string(), "4".to_string())].into();
        for (res, div, want) in [
            ("limits.cpu", None, "1"),
            ("limits.cpu", Some("1m"), "250"),
            ("limits.memory", Some("1Mi"), "64"),
            ("requests.cpu", None, "0"),
            ("limits.pods", None, "0"),
        ] {
            assert_eq!(resource_field(&c, res, div, &node).unwrap(), want, "{res}");
        }
    }
}
