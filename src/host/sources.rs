//! The ConfigMaps and Secrets a pod's env and volumes draw on, fetched from the API when a
//! container starts (k8s: the kubelet's configmap and secret managers), as key → bytes.

use std::collections::BTreeMap;
use std::rc::Rc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::de::DeserializeOwned;

use super::ApiClient;
use crate::api::registry;
use crate::component::ApiOp;
use crate::kubelet::runtime::StartError;

pub type Data = BTreeMap<String, Vec<u8>>;

fn config_error(message: String) -> StartError {
    StartError::new("CreateContainerConfigError", message)
}

/// The object, `None` if it does not exist.
async fn get<T: DeserializeOwned>(
    api: &Rc<dyn ApiClient>,
    plural: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<T>, StartError> {
    let resource = registry::by_plural("", plural).expect("registered");
    let op = ApiOp::Get {
        resource,
        namespace: Some(namespace.into()),
        name: name.into(),
    };
    match api.execute(op).await {
        Ok(v) => serde_json::from_value(v.as_ref().clone())
            .map(Some)
            .map_err(|e| config_error(format!("{plural} {name:?}: {e}"))),
        Err(e) if e.code == 404 => Ok(None),
        Err(e) => Err(config_error(format!(
            "cannot get {plural} {name:?}: {}",
            e.message
        ))),
    }
}

/// A ConfigMap's data and binaryData.
pub async fn config_map(
    api: &Rc<dyn ApiClient>,
    namespace: &str,
    name: &str,
) -> Result<Option<Data>, StartError> {
    let cm: Option<ConfigMap> = get(api, "configmaps", namespace, name).await?;
    Ok(cm.map(|cm| {
        let mut data: Data = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        data.extend(
            cm.binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        data
    }))
}

/// A Secret's data (decoded) and stringData.
pub async fn secret(
    api: &Rc<dyn ApiClient>,
    namespace: &str,
    name: &str,
) -> Result<Option<Data>, StartError> {
    let s: Option<Secret> = get(api, "secrets", namespace, name).await?;
    Ok(s.map(|s| {
        let mut data: Data = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        data.extend(
            s.string_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes())),
        );
        data
    }))
}
