//! Controller connections (tokio): the per-connection loop, active (`tcp:HOST:PORT`,
//! reconnecting with exponential backoff) and passive (`ptcp:PORT[:ADDR]`, loopback
//! unless an address is given) targets.
//!
//! A connection sends HELLO, waits for the controller's, negotiates 1.3 from the version
//! bitmaps (spec 6.3.1; no common version: HELLO_FAILED and close), then registers
//! with the core. From then on it splits the byte stream into frames, answers
//! ECHO_REQUEST itself, forwards every other decoded message to the core, and answers
//! decode errors on the offending xid (connection-scoped ones close it, spec 7.1 /
//! 6.3.1). When the peer is silent for one echo interval it is sent an ECHO_REQUEST;
//! silent for three, it is considered dead and dropped.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::Sender,
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use lime_openflow::{
    EchoRequest, ErrorScope, Hello, Message, error_reply, framing, negotiate_version,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufWriter},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};

use super::{
    core::Cmd,
    state::{ConnId, Outbox},
};

/// Messages queued for one connection before the core starts dropping async ones.
pub const OUTBOX_LEN: usize = 1 << 16;

/// What a connection needs to know.
#[derive(Clone)]
pub struct ConnCtx {
    /// The core.
    pub core: Sender<Cmd>,
    /// Index of the virtual switch this connection belongs to (its only one).
    pub vswitch: usize,
    /// Name, for logs.
    pub name: String,
    /// Connection ids.
    pub ids: Arc<AtomicU64>,
    /// Flips to true at shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Echo interval.
    pub echo: Duration,
}

/// Why a connection ended.
#[derive(Debug)]
pub enum End {
    /// Before the handshake completed.
    Handshake(String),
    /// After it.
    Closed(String),
}

async fn writer(mut rx: mpsc::Receiver<Bytes>, w: tokio::net::tcp::OwnedWriteHalf) {
    let mut w = BufWriter::with_capacity(1 << 16, w);
    while let Some(b) = rx.recv().await {
        if w.write_all(&b).await.is_err() {
            return;
        }
        while let Ok(b) = rx.try_recv() {
            if w.write_all(&b).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.into_inner().shutdown().await;
}

/// Serve one TCP connection to a controller until it closes, dies or the agent stops.
pub async fn serve(stream: TcpStream, ctx: ConnCtx) -> End {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let (mut r, w) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Bytes>(OUTBOX_LEN);
    let writer = tokio::spawn(writer(rx, w));
    let outbox = Outbox::new(tx.clone());
    let ours = Hello::default();
    let _ = outbox.send(0, &Message::Hello(ours.clone()));
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut shutdown = ctx.shutdown.clone();
    let mut conn: Option<ConnId> = None;
    let mut last_rx = Instant::now();
    let mut echo_sent = false;
    let mut tick = tokio::time::interval(ctx.echo.min(Duration::from_secs(1)));
    let end = 'conn: loop {
        tokio::select! {
            _ = shutdown.changed() => break 'conn End::Closed("agent stopping".into()),
            _ = tick.tick() => {
                let idle = last_rx.elapsed();
                if idle >= ctx.echo * 3 {
                    break 'conn End::Closed(format!("no answer for {idle:?}: dead peer"));
                }
                if idle >= ctx.echo && !echo_sent && conn.is_some() {
                    let _ = outbox.send(0, &Message::EchoRequest(EchoRequest { data: Bytes::from_static(b"lime") }));
                    echo_sent = true;
                }
                if conn.is_none() && idle >= ctx.echo {
                    break 'conn End::Handshake("no HELLO".into());
                }
            }
            n = r.read_buf(&mut buf) => {
                match n {
                    Ok(0) => break 'conn if buf.is_empty() {
                        End::Closed("closed by peer".into())
                    } else {
                        End::Closed("closed by peer mid-message".into())
                    },
                    Err(e) => break 'conn End::Closed(e.to_string()),
                    Ok(_) => {}
                }
                last_rx = Instant::now();
                echo_sent = false;
                loop {
                    let frame = match framing::next_frame(&mut buf) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            let (xid, err) = error_reply(&e, &buf);
                            let _ = outbox.send(xid, &Message::Error(err));
                            break 'conn End::Closed(format!("unframeable input: {e}"));
                        }
                    };
                    match Message::decode(&frame.bytes) {
                        Ok((h, Message::Hello(theirs))) => {
                            if conn.is_some() {
                                continue;
                            }
                            if let Err(e) = negotiate_version(&ours, &theirs) {
                                let (xid, err) = error_reply(&e, &frame.bytes);
                                let _ = outbox.send(xid.max(h.xid), &Message::Error(err));
                                break 'conn End::Handshake(e.to_string());
                            }
                            let id = ctx.ids.fetch_add(1, Ordering::Relaxed);
                            conn = Some(id);
                            if ctx.core.send(Cmd::Connect {
                                vswitch: ctx.vswitch,
                                conn: id,
                                peer: peer.clone(),
                                outbox: outbox.clone(),
                            }).is_err() {
                                break 'conn End::Closed("core stopped".into());
                            }
                        }
                        Ok((h, Message::EchoRequest(e))) => {
                            let _ = outbox.send(h.xid, &Message::EchoReply(e.reply()));
                        }
                        Ok((h, msg)) => {
                            let Some(id) = conn else {
                                // Spec 6.3.1: nothing before the HELLO exchange.
                                break 'conn End::Handshake(format!("{:?} before HELLO", msg.msg_type()));
                            };
                            let head = frame.bytes.slice(..frame.bytes.len().min(64));
                            if ctx.core.send(Cmd::Msg { conn: id, xid: h.xid, msg: Box::new(msg), head }).is_err() {
                                break 'conn End::Closed("core stopped".into());
                            }
                        }
                        Err(e) => {
                            let (xid, err) = error_reply(&e, &frame.bytes);
                            let _ = outbox.send(xid, &Message::Error(err));
                            if e.scope() == ErrorScope::Connection {
                                break 'conn if conn.is_some() {
                                    End::Closed(e.to_string())
                                } else {
                                    End::Handshake(e.to_string())
                                };
                            }
                        }
                    }
                }
            }
        }
    };
    if let Some(id) = conn {
        let _ = ctx.core.send(Cmd::Disconnect { conn: id });
    }
    drop(outbox);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    match &end {
        End::Handshake(why) | End::Closed(why) => {
            eprintln!("lime: {}: connection {peer} ended: {why}", ctx.name);
        }
    }
    end
}

/// `tcp:HOST:PORT`: connect, serve, reconnect with backoff (100 ms doubling to 8 s,
/// back to 100 ms after a connection that completed its handshake).
pub async fn active(host: String, port: u16, ctx: ConnCtx) {
    let mut backoff = Duration::from_millis(100);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let attempt = tokio::select! {
            _ = shutdown.changed() => return,
            s = TcpStream::connect((host.as_str(), port)) => s,
        };
        if let Ok(stream) = attempt
            && let End::Closed(_) = serve(stream, ctx.clone()).await
        {
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(8));
    }
}

/// `ptcp:PORT[:ADDR]`: bind (127.0.0.1 unless `addr`), return the bound address and the
/// accept loop to spawn.
pub async fn passive(
    port: u16,
    addr: Option<IpAddr>,
    ctx: ConnCtx,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let bind = SocketAddr::new(addr.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port);
    let listener = TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    let mut shutdown = ctx.shutdown.clone();
    Ok((local, async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                a = listener.accept() => {
                    if let Ok((s, _)) = a {
                        tokio::spawn(serve(s, ctx.clone()));
                    }
                }
            }
        }
    }))
}
