//! Probes with ordinary sockets: round-trip latency (a UDP ping-pong between two
//! namespaces) and TCP throughput (iperf3 from Debian).
use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use serde::Serialize;

use super::TrafficError;

/// Round-trip latency percentiles.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Round trips answered.
    pub samples: usize,
    /// Requests never answered within the timeout.
    pub lost: usize,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TrafficError {
    let what = what.into();
    move |source| TrafficError::Io { what, source }
}

/// The `q`-quantile (0..=1) of sorted values (nearest rank).
#[must_use]
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `count` UDP round trips from `client_ns` to an echo server in `server_ns` listening
/// on `server_ip:port` (one request in flight at a time; a few warm-up trips first).
///
/// # Errors
/// Socket errors, or no answer at all.
pub fn udp_ping_pong(
    client_ns: &str,
    server_ns: &str,
    server_ip: IpAddr,
    port: u16,
    count: usize,
) -> Result<Latency, TrafficError> {
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let stop = &stop;
        let server = s.spawn(move || {
            lime_lab::netns::run_in_netns(server_ns, || -> Result<(), TrafficError> {
                let sock = UdpSocket::bind(SocketAddr::new(server_ip, port))
                    .map_err(io_err("binding the echo server"))?;
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .map_err(io_err("echo server timeout"))?;
                let _ = ready_tx.send(());
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
                Ok(())
            })?
        });
        let client = (|| {
            ready_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| TrafficError::Tool {
                    tool: "udp ping-pong",
                    detail: "the echo server did not start".into(),
                })?;
            lime_lab::netns::run_in_netns(client_ns, || ping_loop(server_ip, port, count))?
        })();
        stop.store(true, Ordering::Relaxed);
        let served = server
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let latency = client?;
        served?;
        Ok(latency)
    })
}

fn ping_loop(server_ip: IpAddr, port: u16, count: usize) -> Result<Latency, TrafficError> {
    let any: IpAddr = if server_ip.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let sock = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(io_err("binding the client"))?;
    sock.connect(SocketAddr::new(server_ip, port))
        .map_err(io_err("connecting the client"))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(io_err("client timeout"))?;
    let warmup = 20;
    let mut rtts = Vec::with_capacity(count);
    let mut lost = 0;
    let mut buf = [0u8; 64];
    for seq in 0..(count + warmup) as u64 {
        let t = Instant::now();
        sock.send(&seq.to_be_bytes())
            .map_err(io_err("sending a ping"))?;
        let answered = loop {
            match sock.recv(&mut buf) {
                Ok(8) if buf[..8] == seq.to_be_bytes() => break true,
                Ok(_) => {} // a late answer to an earlier ping
                Err(_) => break false,
            }
        };
        if seq >= warmup as u64 {
            if answered {
                rtts.push(t.elapsed().as_secs_f64() * 1e6);
            } else {
                lost += 1;
            }
        }
    }
    if rtts.is_empty() {
        return Err(TrafficError::Tool {
            tool: "udp ping-pong",
            detail: format!("no answer to {count} pings"),
        });
    }
    rtts.sort_by(f64::total_cmp);
    Ok(Latency {
        samples: rtts.len(),
        lost,
        p50_us: quantile(&rtts, 0.5),
        p99_us: quantile(&rtts, 0.99),
    })
}

/// TCP throughput in Gbit/s from `client_ns` to an iperf3 server started (and stopped)
/// in `server_ns` on `server_ip:port`, for `seconds`.
///
/// # Errors
/// If iperf3 is missing, fails, or reports nothing.
pub fn iperf3_tcp(
    client_ns: &str,
    server_ns: &str,
    server_ip: IpAddr,
    port: u16,
    seconds: u32,
) -> Result<f64, TrafficError> {
    let port_s = port.to_string();
    let mut server = lime_lab::netns::command_in(
        server_ns,
        &[
            "iperf3",
            "-s",
            "-1",
            "-p",
            &port_s,
            "-B",
            &server_ip.to_string(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map_err(io_err("starting the iperf3 server"))?;
    let result = (|| {
        let secs = seconds.max(1).to_string();
        let ip = server_ip.to_string();
        let mut last = String::new();
        // The server needs a moment to listen.
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            let out = lime_lab::netns::command_in(
                client_ns,
                &["iperf3", "-c", &ip, "-p", &port_s, "-t", &secs, "-J"],
            )
            .output()
            .map_err(io_err("running the iperf3 client"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(bps) = json
                .pointer("/end/sum_received/bits_per_second")
                .and_then(serde_json::Value::as_f64)
            {
                return Ok(bps / 1e9);
            }
            last = json
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(&text)
                .to_owned();
            if !last.contains("connect") {
                break;
            }
        }
        Err(TrafficError::Tool {
            tool: "iperf3",
            detail: last.trim().chars().take(300).collect(),
        })
    })();
    // The server exits after one test; stop it if the test never happened.
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// Give a UDP socket a deep receive buffer (as root, past `rmem_max`): on a busy
/// machine the receiving process must not be where datagrams are lost.
///
/// # Errors
/// The `setsockopt` error (not root, for one).
pub fn deep_receive_buffer(s: &std::net::UdpSocket) -> std::io::Result<()> {
    let size: libc::c_int = 32 << 20;
    // SAFETY: a valid socket and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&size).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
