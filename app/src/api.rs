//! Server functions: the only way the browser reaches the host. Their
//! bodies run on the server, where the lab store is in the context.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use topology::Topology;

/// A lab as the lab list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabSummary {
    pub name: String,
    pub nodes: usize,
    pub networks: usize,
    pub links: usize,
}

/// A lab with the revision an edit must name when it is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabView {
    pub topology: Topology,
    pub revision: String,
}

#[cfg(feature = "ssr")]
fn store() -> Result<engine::LabStore, ServerFnError> {
    use_context::<engine::LabStore>()
        .ok_or_else(|| ServerFnError::new("the lab store is not configured"))
}

/// Every lab in the state directory, sorted by name.
#[server]
pub async fn list_labs() -> Result<Vec<LabSummary>, ServerFnError> {
    let labs = store()?
        .list()
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(labs
        .into_iter()
        .map(|l| LabSummary {
            name: l.name,
            nodes: l.nodes,
            networks: l.networks,
            links: l.links,
        })
        .collect())
}

/// One lab's topology and revision.
#[server]
pub async fn get_lab(name: String) -> Result<LabView, ServerFnError> {
    let (topology, revision) = store()?
        .get(&name)
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(LabView { topology, revision })
}
