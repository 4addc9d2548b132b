//! Server functions: the only way the browser reaches the host. Their
//! bodies run on the server, where the engine service is in the context.
//! Every mutation goes through the same engine paths as the CLI
//! (`engine::ops`), and every save names the revision it edited.

use std::collections::BTreeMap;

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

/// A lab with the revision an edit must name when it is saved, its VMs'
/// states, and the event sequence number the page should follow from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabView {
    pub topology: Topology,
    pub revision: String,
    /// VM → its state and pid.
    pub states: BTreeMap<String, topology::lifecycle::VmStatus>,
    pub seq: u64,
}

#[cfg(feature = "ssr")]
mod host {
    use std::sync::Arc;

    use leptos::prelude::*;

    pub fn service() -> Result<Arc<engine::service::Service>, ServerFnError> {
        use_context::<Arc<engine::service::Service>>()
            .ok_or_else(|| ServerFnError::new("the engine is not configured"))
    }

    pub fn store() -> Result<engine::LabStore, ServerFnError> {
        use_context::<engine::LabStore>()
            .ok_or_else(|| ServerFnError::new("the lab store is not configured"))
    }

    pub fn err(e: impl std::fmt::Display) -> ServerFnError {
        ServerFnError::new(e.to_string())
    }

    /// An engine error as the page shows it: the message and its causes,
    /// printed once, here at the edge.
    pub fn fault(e: impl std::error::Error + 'static) -> ServerFnError {
        ServerFnError::new(engine::report(&e))
    }

    /// Sets the HTTP status of this server function's answer.
    fn status(code: http::StatusCode) {
        if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
            r.set_status(code);
        }
    }

    /// A store error, with the HTTP status that says what kind it is: a
    /// stale revision or a name in use is 409 Conflict, an unknown lab 404,
    /// bad input 400.
    pub fn store_err(e: engine::store::StoreError) -> ServerFnError {
        use engine::store::StoreError::*;
        status(match &e {
            Conflict { .. } | InUse { .. } | EditedElsewhere { .. } => http::StatusCode::CONFLICT,
            NotFound(_) => http::StatusCode::NOT_FOUND,
            BadName { .. } | Invalid { .. } | TooLarge { .. } => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        });
        fault(e)
    }

    /// An operation refused or failed: bad input (an unknown action, a VM
    /// the lab does not have, an image missing from the store) is 4xx; a
    /// fault of the host is 500.
    pub fn ops_err(e: engine::ops::OpsError) -> ServerFnError {
        use engine::ops::OpsError::*;
        match e {
            Store(e) => store_err(e),
            NoVm { .. }
            | UnknownAction(_)
            | NoImage { .. }
            | NoNic { .. }
            | Invalid { .. }
            | Import { .. }
            | Clab(_)
            | Mgmt(
                engine::mgmt::MgmtError::NotExposed { .. }
                | engine::mgmt::MgmtError::PortInUse { .. },
            ) => {
                status(http::StatusCode::BAD_REQUEST);
                fault(e)
            }
            Lab(engine::lab::LabError::NotRunning { .. }) | Running { .. } | Exists { .. } => {
                status(http::StatusCode::CONFLICT);
                fault(e)
            }
            Snapshot(engine::snapshot::SnapshotError::Missing { .. }) => {
                status(http::StatusCode::NOT_FOUND);
                fault(e)
            }
            Snapshot(
                engine::snapshot::SnapshotError::BadName { .. }
                | engine::snapshot::SnapshotError::Exists { .. },
            ) => {
                status(http::StatusCode::BAD_REQUEST);
                fault(e)
            }
            Lab(_)
            | Image(_)
            | Build { .. }
            | Restart { .. }
            | Setup(_)
            | Snapshot(_)
            | Mgmt(_) => {
                status(http::StatusCode::INTERNAL_SERVER_ERROR);
                fault(e)
            }
        }
    }

    /// Nothing by that name: 404, with the reason.
    pub fn not_found(message: impl std::fmt::Display) -> ServerFnError {
        status(http::StatusCode::NOT_FOUND);
        err(message)
    }

    /// Refused for now, for how much is running: 429, with the reason.
    pub fn too_many(message: impl std::fmt::Display) -> ServerFnError {
        status(http::StatusCode::TOO_MANY_REQUESTS);
        err(message)
    }

    /// Input refused before anything is done: 400, with the reason.
    pub fn bad_request(message: impl std::fmt::Display) -> ServerFnError {
        status(http::StatusCode::BAD_REQUEST);
        err(message)
    }

    /// Runs blocking engine work off the async runtime.
    pub async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, ServerFnError> + Send + 'static,
    ) -> Result<T, ServerFnError> {
        tokio::task::spawn_blocking(f).await.map_err(err)?
    }
}

/// Every lab in the state directory, sorted by name.
#[server(endpoint = "list_labs")]
pub async fn list_labs() -> Result<Vec<LabSummary>, ServerFnError> {
    let labs = host::store()?.list().map_err(host::store_err)?;
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

/// One lab's topology, revision and VM states.
#[server(endpoint = "get_lab")]
pub async fn get_lab(name: String) -> Result<LabView, ServerFnError> {
    let s = host::service()?;
    let seq = s.bus.last_seq();
    let (topology, revision) = s.store.get(&name).map_err(host::store_err)?;
    let states = s.states(&topology);
    Ok(LabView {
        topology,
        revision,
        states,
        seq,
    })
}

/// The base images available for VMs: those in the store, and the built-in
/// ones (`tiny`, `frr`), which are built on first use.
#[server(endpoint = "list_images")]
pub async fn list_images() -> Result<Vec<String>, ServerFnError> {
    let s = host::service()?;
    let mut names: std::collections::BTreeSet<String> = s
        .engine
        .images
        .list()
        .map_err(host::fault)?
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.extend(
        engine::image::build::Flavour::ALL
            .iter()
            .map(|f| f.name().to_string()),
    );
    Ok(names.into_iter().collect())
}

/// Creates an empty lab.
#[server(endpoint = "create_lab")]
pub async fn create_lab(name: String) -> Result<String, ServerFnError> {
    let s = host::service()?;
    let t = engine::ops::empty(&name);
    let done =
        host::blocking(move || Ok(engine::ops::create(&s.engine, &s.store, &t, &|_| {}))).await?;
    done.map(|_| name).map_err(host::ops_err)
}

/// Saves an edit of a lab. `revision` is the one the edit started from; a
/// lab changed since (another tab, the CLI) is refused.
/// (The topology travels as JSON text, exactly as it is exported.)
#[server(endpoint = "save_lab")]
pub async fn save_lab(topology_json: String, revision: String) -> Result<String, ServerFnError> {
    let t: Topology = serde_json::from_str(&topology_json).map_err(host::bad_request)?;
    let s = host::service()?;
    let rev = engine::ops::save(&s.store, &t, &revision).map_err(host::ops_err)?;
    s.lab_saved(&t.name, &rev);
    // Links changed on a running lab are applied live (no VM restarts;
    // anything else waits for Start).
    if !engine::lab::running_qemus(&t.name).is_empty() {
        let lab = t.name.clone();
        let started = s.spawn(&lab, move |s| {
            let steps = engine::ops::apply_links(&s.engine, &t, &s.sayer(&t.name))?;
            if !steps.is_empty() {
                s.sayer(&t.name)(format!("{} link(s) changed live", steps.len()));
            }
            Ok(())
        });
        if let Err(busy) = started {
            // The save stands; its links wait for the next Start.
            s.sayer(&lab)(format!("link changes not applied live: {busy}"));
        }
    }
    Ok(rev)
}

/// A capture and the packet rows it has from `from` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturePage {
    pub info: topology::capture::CaptureInfo,
    pub rows: Vec<topology::capture::Row>,
}

/// Starts a capture on a NIC (`h1:eth0`) or a network of a lab.
#[server(endpoint = "start_capture")]
pub async fn start_capture(
    lab: String,
    target: String,
    filter: String,
) -> Result<topology::capture::CaptureInfo, ServerFnError> {
    let s = host::service()?;
    let (t, _) = s.store.get(&lab).map_err(host::store_err)?;
    // The status is set here, in the request's context (not in the
    // blocking thread, which has none).
    let started = host::blocking(move || {
        Ok(s.captures
            .start(&t, &target, &filter, engine::captures::WEB_LIMITS))
    })
    .await?;
    started.map_err(|e| match e {
        engine::capture::CaptureError::Target(_) | engine::capture::CaptureError::Filter { .. } => {
            host::bad_request(engine::report(&e))
        }
        engine::capture::CaptureError::TooMany { .. } => host::too_many(engine::report(&e)),
        e => host::fault(e),
    })
}

/// The captures of a lab, oldest first.
#[server(endpoint = "list_captures")]
pub async fn list_captures(
    lab: String,
) -> Result<Vec<topology::capture::CaptureInfo>, ServerFnError> {
    let s = host::service()?;
    Ok(s.captures.list(Some(&lab)))
}

/// Rows of capture `id` from number `from` on (at most 500 at a time).
#[server(endpoint = "capture_rows")]
pub async fn capture_rows(id: String, from: u64) -> Result<CapturePage, ServerFnError> {
    let s = host::service()?;
    let (info, rows) = s
        .captures
        .rows(&id, from, 500)
        .ok_or_else(|| host::not_found(format!("no capture {id:?}")))?;
    Ok(CapturePage { info, rows })
}

/// Stops capture `id` (it stays listed and downloadable).
#[server(endpoint = "stop_capture")]
pub async fn stop_capture(id: String) -> Result<(), ServerFnError> {
    let s = host::service()?;
    if !s.captures.stop(&id) {
        return Err(host::not_found(format!("no capture {id:?}")));
    }
    Ok(())
}

/// Deletes capture `id` and its file.
#[server(endpoint = "delete_capture")]
pub async fn delete_capture(id: String) -> Result<(), ServerFnError> {
    let s = host::service()?;
    if !s.captures.delete(&id) {
        return Err(host::not_found(format!("no capture {id:?}")));
    }
    Ok(())
}

/// A copy of a lab under a new name.
#[server(endpoint = "duplicate_lab")]
pub async fn duplicate_lab(from: String, to: String) -> Result<String, ServerFnError> {
    let s = host::service()?;
    let done = host::blocking(move || {
        Ok(engine::ops::duplicate(&s.engine, &s.store, &from, &to, &|_| {}).map(|_| to))
    })
    .await?;
    done.map_err(host::ops_err)
}

/// Renames a lab, keeping its disks, saved states and snapshots (refused
/// while its VMs run: their devices carry its name).
#[server(endpoint = "rename_lab")]
pub async fn rename_lab(from: String, to: String) -> Result<String, ServerFnError> {
    let s = host::service()?;
    let done = host::blocking(move || {
        Ok(engine::ops::rename(&s.engine, &s.store, &from, &to, &|_| {}).map(|_| to))
    })
    .await?;
    done.map_err(host::ops_err)
}

/// Deletes a lab and everything of it (refused while its VMs run).
#[server(endpoint = "delete_lab")]
pub async fn delete_lab(name: String) -> Result<(), ServerFnError> {
    let s = host::service()?;
    let done = host::blocking(move || Ok(engine::ops::delete(&s.engine, &s.store, &name, &|_| {})))
        .await?;
    done.map_err(host::ops_err)
}

/// Creates a lab from topology text (YAML or JSON), or from a containerlab
/// topology (`*.clab.yml`, imported by `topology::clab` with the files it
/// names taken from `files`, a JSON object path → text). Every problem is
/// reported, one per line as `path: message`, and nothing is created then.
/// `name`, when given, replaces the file's lab name. Answers the lab's name
/// and, for a containerlab file, the import's report.
#[server(endpoint = "import_lab")]
pub async fn import_lab(
    text: String,
    name: Option<String>,
    #[server(default)] files: Option<String>,
) -> Result<(String, Vec<String>), ServerFnError> {
    let name = name.filter(|n| !n.is_empty());
    let files: std::collections::BTreeMap<String, String> = match files.as_deref() {
        None | Some("") => Default::default(),
        Some(j) => serde_json::from_str(j).map_err(|e| host::bad_request(format!("files: {e}")))?,
    };
    // The files a containerlab topology names come with it, uploaded: a
    // file, or a directory's files under its path.
    let mut read = move |p: &str| {
        let p = p.trim_start_matches("./");
        if let Some(t) = files.get(p) {
            return Ok(topology::clab::Source::File(t.clone()));
        }
        let dir = format!("{}/", p.trim_end_matches('/'));
        let list: Vec<(String, String)> = files
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&dir)?.to_string(), v.clone())))
            .collect();
        if list.is_empty() {
            Err("not among the files uploaded".into())
        } else {
            Ok(topology::clab::Source::Dir(list))
        }
    };
    let s = host::service()?;
    let done = host::blocking(move || {
        Ok(
            engine::ops::import(&text, name, vec![], &mut read).and_then(|imported| {
                engine::ops::create(&s.engine, &s.store, &imported.topology, &|_| {})
                    .map(|_| (imported.topology.name, imported.report))
            }),
        )
    })
    .await?;
    done.map_err(host::ops_err)
}

/// Starts, stops or restarts VMs of a stored lab (all of them when `vms` is
/// empty). Returns at once; progress, states and failures arrive as events.
#[server(endpoint = "lab_action")]
pub async fn lab_action(
    lab: String,
    action: String,
    #[server(default)] vms: Vec<String>,
) -> Result<(), ServerFnError> {
    // Parsed here, not by the argument decoder, so that an unknown word is
    // answered 400 with the words that are known.
    let action: topology::lifecycle::VmAction = action.parse().map_err(host::bad_request)?;
    let s = host::service()?;
    let (t, _) = s.store.get(&lab).map_err(host::store_err)?;
    let vms: Vec<String> = if vms.is_empty() {
        t.nodes.iter().map(|n| n.name.clone()).collect()
    } else {
        vms
    };
    engine::ops::check_vms(&t, &vms).map_err(host::ops_err)?;
    engine::ops::check_host(&s.engine, &t).map_err(host::ops_err)?;
    s.spawn(&lab, move |s| {
        let say = s.sayer(&t.name);
        let names: Vec<&str> = vms.iter().map(String::as_str).collect();
        engine::ops::run_vm_action(
            &s.engine,
            &t,
            action,
            &names,
            std::time::Duration::from_secs(300),
            &say,
        )?;
        say(format!("{action}: done ({})", names.join(", ")));
        Ok(())
    })
    .map_err(host::too_many)
}

/// Whether the host lets lab `lab`'s port forwards listen beyond loopback
/// (the editor's switch; `minivm up --expose` on the command line).
#[server(endpoint = "get_expose")]
pub async fn get_expose(lab: String) -> Result<bool, ServerFnError> {
    let s = host::service()?;
    s.store.get(&lab).map_err(host::store_err)?;
    Ok(engine::mgmt::exposed(&s.engine.lab_dir(&lab)))
}

/// Sets the host's opt-in for lab `lab`'s forwards beyond loopback; it
/// applies at the next start of the lab.
#[server(endpoint = "set_expose")]
pub async fn set_expose(lab: String, on: bool) -> Result<(), ServerFnError> {
    let s = host::service()?;
    let done = host::blocking(move || {
        Ok(engine::ops::set_expose(
            &s.engine,
            &s.store,
            &lab,
            on,
            &|_| {},
        ))
    })
    .await?;
    done.map_err(host::ops_err)
}

/// One lab snapshot, as the Snapshots panel lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRow {
    pub name: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    pub bytes: u64,
    pub vms: usize,
    /// VMs that were running (resumed by a restore).
    pub running: usize,
}

/// The lab's snapshots, oldest first.
#[server(endpoint = "list_snapshots")]
pub async fn list_snapshots(lab: String) -> Result<Vec<SnapshotRow>, ServerFnError> {
    let s = host::service()?;
    s.store.get(&lab).map_err(host::store_err)?;
    let all = host::blocking(move || Ok(engine::snapshot::list(&s.engine, &lab)))
        .await?
        .map_err(|e| host::ops_err(e.into()))?;
    Ok(all
        .into_iter()
        .map(|snap| SnapshotRow {
            running: snap.vms.values().filter(|v| v.saved.is_some()).count(),
            vms: snap.vms.len(),
            name: snap.name,
            created_at: snap.created_at,
            bytes: snap.bytes,
        })
        .collect())
}

/// Takes a snapshot (every running VM paused for the moment of the save);
/// answers once it is written.
#[server(endpoint = "save_snapshot")]
pub async fn save_snapshot(lab: String, name: String) -> Result<(), ServerFnError> {
    let s = host::service()?;
    let snap = host::blocking(move || {
        let say = s.sayer(&lab);
        let r = engine::ops::snapshot::save(&s.engine, &s.store, &lab, &name, &say);
        if let Ok(snap) = &r {
            say(format!(
                "snapshot {:?}: done ({} VM(s), {:.1} MB)",
                snap.name,
                snap.vms.len(),
                snap.bytes as f64 / 1e6
            ));
        }
        Ok(r)
    })
    .await?;
    snap.map(|_| ()).map_err(host::ops_err)
}

/// Brings the lab back to a snapshot; answers once the resumed VMs are
/// ready.
#[server(endpoint = "restore_snapshot")]
pub async fn restore_snapshot(lab: String, name: String) -> Result<(), ServerFnError> {
    let s = host::service()?;
    let snap = host::blocking(move || {
        let say = s.sayer(&lab);
        let r = engine::ops::snapshot::restore(
            &s.engine,
            &s.store,
            &lab,
            &name,
            std::time::Duration::from_secs(300),
            &say,
        );
        if let Ok(snap) = &r {
            say(format!("restore {:?}: done", snap.name));
        }
        Ok(r)
    })
    .await?;
    snap.map(|_| ()).map_err(host::ops_err)
}

/// Removes a snapshot.
#[server(endpoint = "delete_snapshot")]
pub async fn delete_snapshot(lab: String, name: String) -> Result<(), ServerFnError> {
    let s = host::service()?;
    host::blocking(move || {
        Ok(engine::ops::snapshot::remove(
            &s.engine,
            &lab,
            &name,
            &|_| {},
        ))
    })
    .await?
    .map_err(host::ops_err)
}

/// One cell of the connectivity matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckCell {
    pub from: String,
    pub to: String,
    pub address: String,
    /// The network they share; `None` for a routed pair.
    pub network: Option<String>,
    pub ok: bool,
    pub rtt_ms: Option<f64>,
    pub error: Option<String>,
}

/// Pings every pair the lab implies (as `minivm check`); takes a few seconds.
#[server(endpoint = "check_lab")]
pub async fn check_lab(lab: String) -> Result<Vec<CheckCell>, ServerFnError> {
    let s = host::service()?;
    let (t, _) = s.store.get(&lab).map_err(host::store_err)?;
    host::blocking(move || {
        Ok(engine::check::run(&s.engine, &t, 8)
            .into_iter()
            .map(|o| CheckCell {
                from: o.pair.from,
                to: o.pair.to,
                address: o.pair.address.to_string(),
                network: o.pair.network,
                ok: o.ok,
                rtt_ms: o.rtt_ms,
                error: o.error,
            })
            .collect())
    })
    .await
}

/// What a command run in a guest did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command in a VM through its guest agent (as `minivm exec`). The
/// line is split into words (quotes group); no shell is put in between.
#[server(endpoint = "exec_vm")]
pub async fn exec_vm(lab: String, vm: String, line: String) -> Result<ExecOutput, ServerFnError> {
    let argv = crate::edit::split_words(&line).map_err(host::bad_request)?;
    if argv.is_empty() {
        return Err(host::bad_request("type a command"));
    }
    let s = host::service()?;
    s.store.get(&lab).map_err(host::store_err)?;
    // The engine's error is turned into a status here, in the request's
    // context (a blocking thread has none).
    let r = tokio::task::spawn_blocking(move || {
        s.engine
            .exec(&lab, &vm, &argv, std::time::Duration::from_secs(30))
    })
    .await
    .map_err(host::err)?
    .map_err(|e| host::ops_err(e.into()))?;
    Ok(ExecOutput {
        exit_code: r.exit_code,
        stdout: r.stdout,
        stderr: r.stderr,
    })
}

/// The message of a server function error, without the framework's prefix.
pub fn server_message(e: &ServerFnError) -> String {
    let s = e.to_string();
    s.strip_prefix("error running server function: ")
        .unwrap_or(&s)
        .to_string()
}

/// A template as the gallery shows it: what `minivm templates` lists, and
/// a small SVG picture of the lab it makes with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateCard {
    pub info: topology::templates::Info,
    pub svg: String,
}

/// The built-in templates and the user's (`<state>/templates/`).
#[server(endpoint = "list_templates")]
pub async fn list_templates() -> Result<Vec<TemplateCard>, ServerFnError> {
    let s = host::service()?;
    host::blocking(move || {
        let store = engine::templates::TemplateStore::open(&s.engine.state_dir);
        Ok(store
            .list()
            .into_iter()
            .map(|info| {
                let svg = store
                    .instantiate(&info.name, "preview", &[])
                    .map(|t| topology::graph::svg(&t, 0.3))
                    .unwrap_or_default();
                TemplateCard { info, svg }
            })
            .collect())
    })
    .await
}

/// A new lab `lab` from template `template` with `sets` (parameter,
/// value) applied; stored, not started. Returns its name.
#[server(endpoint = "create_from_template")]
pub async fn create_from_template(
    lab: String,
    template: String,
    sets: Vec<(String, String)>,
) -> Result<String, ServerFnError> {
    let s = host::service()?;
    let t = host::blocking(move || {
        engine::templates::TemplateStore::open(&s.engine.state_dir)
            .instantiate(&template, &lab, &sets)
            .map_err(host::bad_request)
    })
    .await?;
    let s = host::service()?;
    let done = host::blocking(move || {
        Ok(engine::ops::create(&s.engine, &s.store, &t, &|_| {}).map(|_| t.name))
    })
    .await?;
    done.map_err(host::ops_err)
}

/// Saves a stored lab as a template of the user's.
#[server(endpoint = "save_as_template")]
pub async fn save_as_template(
    lab: String,
    name: String,
    description: String,
) -> Result<(), ServerFnError> {
    let s = host::service()?;
    let (t, _) = s.store.get(&lab).map_err(host::store_err)?;
    host::blocking(move || {
        engine::templates::TemplateStore::open(&s.engine.state_dir)
            .save(&name, &t, &description)
            .map(|_| ())
            .map_err(host::bad_request)
    })
    .await
}

/// A stored lab as manifests for a Kubernetes cluster with KubeVirt: one
/// YAML stream, what is not carried as comments at its top (the same text
/// as `minivm export LAB --format kubevirt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubevirtExport {
    pub file: String,
    pub yaml: String,
    pub manifests: usize,
    pub not_carried: usize,
}

#[server(endpoint = "export_kubevirt")]
pub async fn export_kubevirt(lab: String, cni: String) -> Result<KubevirtExport, ServerFnError> {
    let s = host::service()?;
    let (t, _) = s.store.get(&lab).map_err(host::store_err)?;
    let cni = engine::kubevirt::Cni::parse(&cni)
        .ok_or_else(|| host::bad_request(format!("cni: {cni:?} is not ovn-layer2 or bridge")))?;
    let opts = engine::kubevirt::Options {
        cni,
        ..Default::default()
    };
    let out = engine::kubevirt::export(&t, &opts).map_err(host::bad_request)?;
    Ok(KubevirtExport {
        file: format!("{lab}-kubevirt.yaml"),
        yaml: out.stream(),
        manifests: out.manifests.len(),
        not_carried: out.report.len(),
    })
}

/// Runs one test of a stored lab (the panel runs them all at once, each
/// result shown as it comes).
#[server(endpoint = "run_lab_test")]
pub async fn run_lab_test(
    lab: String,
    name: String,
) -> Result<topology::labtest::Outcome, ServerFnError> {
    let s = host::service()?;
    let (t, _) = s.store.get(&lab).map_err(host::store_err)?;
    let planned = topology::labtest::plan(&t)
        .into_iter()
        .find(|p| p.name == name.trim())
        .ok_or_else(|| host::not_found(format!("lab {lab:?} has no test named {name:?}")))?;
    host::blocking(move || Ok(engine::labtest::run_one(&s.engine, &lab, &planned))).await
}

/// The palette's node templates: built-in presets, then the user's.
#[server(endpoint = "list_node_templates")]
pub async fn list_node_templates() -> Result<Vec<topology::nodetpl::NodeTemplate>, ServerFnError> {
    let s = host::service()?;
    host::blocking(move || {
        Ok(engine::templates::NodeTemplateStore::open(&s.engine.state_dir).list())
    })
    .await
}

/// Saves a VM's settings (the node as the editor has it, JSON) as node
/// template `name` of kind `kind`.
#[server(endpoint = "save_node_template")]
pub async fn save_node_template(
    node_json: String,
    name: String,
    kind: String,
) -> Result<(), ServerFnError> {
    let node: topology::Node = serde_json::from_str(&node_json).map_err(host::bad_request)?;
    let kind = topology::DeviceKind::parse(&kind).ok_or_else(|| {
        host::bad_request(format!(
            "kind: {kind:?} is not host, router, switch or server"
        ))
    })?;
    let tpl = topology::nodetpl::from_node(&name, kind, &node);
    let s = host::service()?;
    host::blocking(move || {
        engine::templates::NodeTemplateStore::open(&s.engine.state_dir)
            .save(&tpl)
            .map_err(host::bad_request)
    })
    .await
}

/// Renames (`to` given) or deletes (`to` empty) one of the user's node
/// templates, or imports one from its exported JSON (`name` empty, the
/// JSON in `to`).
#[server(endpoint = "change_node_template")]
pub async fn change_node_template(name: String, to: String) -> Result<String, ServerFnError> {
    let s = host::service()?;
    host::blocking(move || {
        let store = engine::templates::NodeTemplateStore::open(&s.engine.state_dir);
        if name.is_empty() {
            return store.import(&to).map_err(host::bad_request);
        }
        let to = to.trim().to_string();
        if to.is_empty() {
            store.remove(&name).map_err(host::bad_request)?;
        } else {
            store.rename(&name, &to).map_err(host::bad_request)?;
        }
        Ok(to)
    })
    .await
}
