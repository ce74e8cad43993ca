//! The control socket of `lime run`: a unix socket (`/run/lime/<lab>.sock`) speaking
//! JSON lines. Each request line gets one response line; a migration asked with
//! `"progress":true` first gets one event line per step as it happens (objects with an
//! `event` field, [`crate::migration::Progress`]), then its response.
//!
//! ```text
//! → {"cmd":"dump-flows","vswitch":"vs1"}
//! ← {"ok":true,"flows":[{"id":1,"cookie":0,...}]}
//! → {"cmd":"status"}
//! ← {"ok":true,"vswitches":[["vs1",1]],"status":{"lab":"demo","vswitches":[...],"migration":null}}
//! → {"cmd":"migrate","vswitch":"vs1","to":"s3","progress":true}
//! ← {"event":"phase","vswitch":"vs1","from":"s1","to":"s3","phase":"clone"}
//! ← {"event":"host-moved","vswitch":"vs1","host":"h1","to":"s3","downtime_ms":120.5}
//! ← {"event":"done","report":{...}}
//! ← {"ok":true,"migrations":[{"vswitch":"vs1","from":"s1","to":"s3",...}]}
//! ```
//!
//! (`vswitches` in the status response is the older form — (name, connected
//! controllers) — kept for clients that read it.)
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt},
    net::UnixListener,
};

use super::{CoreHandle, FlowDump};

/// Where the daemon of lab `lab` listens.
#[must_use]
pub fn socket_path(lab: &str) -> PathBuf {
    PathBuf::from("/run/lime").join(format!("{lab}.sock"))
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// The flow entries of a virtual switch.
    DumpFlows {
        /// Virtual switch name.
        vswitch: String,
    },
    /// Virtual switches and their connected controllers.
    Status,
    /// Move every host of a virtual switch to a physical switch.
    Migrate {
        /// Virtual switch name.
        vswitch: String,
        /// Target physical switch.
        to: String,
        /// Strategy (default clone).
        #[serde(default = "default_strategy")]
        strategy: crate::migration::Strategy,
        /// Stream progress events before the response.
        #[serde(default)]
        progress: bool,
    },
}

fn default_strategy() -> crate::migration::Strategy {
    crate::migration::Strategy::Clone
}

/// A response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For dump-flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<Vec<FlowDump>>,
    /// For status: (virtual switch, connected controllers) — the older form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vswitches: Option<Vec<(String, usize)>>,
    /// For status: everything `lime status` shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<super::status::Status>,
    /// For migrate: one report per source physical switch
    /// ([`crate::migration::Report`] as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<Vec<serde_json::Value>>,
}

/// Errors of the control client.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon there.
    #[error("cannot reach the LIME daemon at {path} (is `lime run` running?)")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// I/O while talking to it.
    #[error("talking to the LIME daemon: {0}")]
    Io(#[from] std::io::Error),
    /// It answered something that is not a response.
    #[error("bad answer from the LIME daemon: {0}")]
    Json(#[from] serde_json::Error),
}

/// Answer `req`; progress events of a migration that asked for them go to `event`
/// (as JSON lines) before the answer is returned.
fn answer(handle: &CoreHandle, req: Request, mut event: impl FnMut(Vec<u8>)) -> Response {
    let fail = |error: String| Response {
        ok: false,
        error: Some(error),
        ..Response::default()
    };
    match req {
        Request::DumpFlows { vswitch } => match handle.dump_flows(&vswitch) {
            Ok(flows) => Response {
                ok: true,
                flows: Some(flows),
                ..Response::default()
            },
            Err(e) => fail(e),
        },
        Request::Migrate {
            vswitch,
            to,
            strategy,
            progress,
        } => {
            let result = handle.migrate_with_progress(&vswitch, &to, strategy, |p| {
                if progress && let Ok(mut line) = serde_json::to_vec(&p) {
                    line.push(b'\n');
                    event(line);
                }
            });
            match result {
                Ok(reports) => Response {
                    ok: true,
                    migrations: Some(
                        reports
                            .iter()
                            .map(|r| serde_json::to_value(r).unwrap_or_default())
                            .collect(),
                    ),
                    ..Response::default()
                },
                Err(e) => fail(e),
            }
        }
        Request::Status => match handle.status() {
            Ok(st) => Response {
                ok: true,
                vswitches: Some(
                    st.vswitches
                        .iter()
                        .map(|v| (v.name.clone(), v.connected.len()))
                        .collect(),
                ),
                status: Some(st),
                ..Response::default()
            },
            Err(e) => fail(e),
        },
    }
}

/// Serve the control socket until the runtime stops.
pub async fn serve(listener: UnixListener, handle: CoreHandle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Everything this request writes (events, then the response) comes
                // through one channel, in order.
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
                match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        let h = handle.clone();
                        tokio::task::spawn_blocking(move || {
                            let events = tx.clone();
                            let resp = answer(&h, req, |l| {
                                let _ = events.send(l);
                            });
                            let mut out = serde_json::to_vec(&resp).unwrap_or_default();
                            out.push(b'\n');
                            let _ = tx.send(out);
                        });
                    }
                    Err(e) => {
                        let resp = Response {
                            ok: false,
                            error: Some(format!("bad request: {e}")),
                            ..Response::default()
                        };
                        let mut out = serde_json::to_vec(&resp).unwrap_or_default();
                        out.push(b'\n');
                        let _ = tx.send(out);
                    }
                }
                while let Some(out) = rx.recv().await {
                    if w.write_all(&out).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Send one request to the daemon at `path` and wait for its response.
///
/// # Errors
/// No daemon, I/O, or an unparsable answer.
pub fn request(path: &Path, req: &Request) -> Result<Response, ControlError> {
    request_with_events(path, req, |_| {})
}

/// Send one request to the daemon at `path`; tell `event` every event line that comes
/// before the response (a migration's progress), then return the response.
///
/// # Errors
/// No daemon, I/O, or an unparsable answer.
pub fn request_with_events(
    path: &Path,
    req: &Request,
    mut event: impl FnMut(crate::migration::Progress),
) -> Result<Response, ControlError> {
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_owned(),
        source,
    })?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut r = BufReader::new(s);
    loop {
        let mut answer = String::new();
        if r.read_line(&mut answer)? == 0 {
            return Err(ControlError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection before answering",
            )));
        }
        let v: serde_json::Value = serde_json::from_str(&answer)?;
        if v.get("event").is_some() {
            event(serde_json::from_value(v)?);
        } else {
            return Ok(serde_json::from_value(v)?);
        }
    }
}
