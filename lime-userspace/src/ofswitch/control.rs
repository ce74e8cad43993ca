//! The control socket of `lime run`: a unix socket (`/run/lime/<lab>.sock`) speaking
//! JSON lines. Each request line gets one response line.
//!
//! ```text
//! → {"cmd":"dump-flows","vswitch":"vs1"}
//! ← {"ok":true,"flows":[{"id":1,"cookie":0,...}]}
//! → {"cmd":"status"}
//! ← {"ok":true,"vswitches":[["vs1",1]]}
//! → {"cmd":"migrate","vswitch":"vs1","to":"s3"}
//! ← {"ok":true,"migrations":[{"vswitch":"vs1","from":"s1","to":"s3",...}]}
//! ```
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
    },
}

fn default_strategy() -> crate::migration::Strategy {
    crate::migration::Strategy::Clone
}

/// A response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For dump-flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<Vec<FlowDump>>,
    /// For status: (virtual switch, connected controllers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vswitches: Option<Vec<(String, usize)>>,
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

fn answer(handle: &CoreHandle, req: Request) -> Response {
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
        } => match handle.migrate(&vswitch, &to, strategy) {
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
        },
        Request::Status => match handle.status() {
            Ok(v) => Response {
                ok: true,
                vswitches: Some(v),
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
                let resp = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        let h = handle.clone();
                        tokio::task::spawn_blocking(move || answer(&h, req))
                            .await
                            .unwrap_or_default()
                    }
                    Err(e) => Response {
                        ok: false,
                        error: Some(format!("bad request: {e}")),
                        ..Response::default()
                    },
                };
                let mut out = serde_json::to_vec(&resp).unwrap_or_default();
                out.push(b'\n');
                if w.write_all(&out).await.is_err() {
                    return;
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
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_owned(),
        source,
    })?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}
