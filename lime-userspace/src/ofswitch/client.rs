//! A minimal controller-side OpenFlow connection on top of the codec, blocking and
//! scriptable: the integration tests and `lime bench openflow` drive the switch with it
//! (it is not a controller framework: no apps, no state beyond the socket).
use std::{
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use lime_openflow::{Header, Hello, Message, framing};

/// One connection from a switch, seen from the controller.
pub struct ScriptedController {
    stream: TcpStream,
    buf: BytesMut,
    next_xid: u32,
    /// ECHO_REQUESTs the switch sent (each was answered).
    pub echoes_answered: u64,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl ScriptedController {
    /// Listen on 127.0.0.1 on a free port; returns the listener and the port.
    ///
    /// # Errors
    /// Binding failed.
    pub fn listen() -> io::Result<(TcpListener, u16)> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        Ok((l, port))
    }

    /// Wait up to `timeout` for the switch to connect, then exchange HELLOs.
    ///
    /// # Errors
    /// Timeout, I/O, or a first message that is not HELLO.
    pub fn accept(listener: &TcpListener, timeout: Duration) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no switch connected",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        Self::handshake(stream, timeout)
    }

    /// Connect to a switch listening at `addr` (a `ptcp:` target), then exchange HELLOs.
    ///
    /// # Errors
    /// Connection refused, timeout, I/O, or a first message that is not HELLO.
    pub fn connect(addr: std::net::SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        Self::handshake(stream, timeout)
    }

    fn handshake(stream: TcpStream, timeout: Duration) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let mut c = Self {
            stream,
            buf: BytesMut::with_capacity(1 << 16),
            next_xid: 1000,
            echoes_answered: 0,
        };
        match c.recv(timeout)? {
            Some((_, Message::Hello(_))) => {}
            other => return Err(invalid(format!("expected HELLO, got {other:?}"))),
        }
        c.send_xid(1, &Message::Hello(Hello::default()))?;
        Ok(c)
    }

    /// Send a message with a fresh xid; returns the xid.
    ///
    /// # Errors
    /// I/O, or a message too long to encode.
    pub fn send(&mut self, msg: &Message) -> io::Result<u32> {
        self.next_xid += 1;
        let xid = self.next_xid;
        self.send_xid(xid, msg)?;
        Ok(xid)
    }

    /// Send a message with a given xid.
    ///
    /// # Errors
    /// I/O, or a message too long to encode.
    pub fn send_xid(&mut self, xid: u32, msg: &Message) -> io::Result<()> {
        let b = msg.to_bytes(xid).map_err(invalid)?;
        self.stream.write_all(&b)
    }

    /// Encode many messages into one write; returns their xids.
    ///
    /// # Errors
    /// I/O, or a message too long to encode.
    pub fn send_many<'a>(
        &mut self,
        msgs: impl IntoIterator<Item = &'a Message>,
    ) -> io::Result<Vec<u32>> {
        let mut out = BytesMut::new();
        let mut xids = Vec::new();
        for m in msgs {
            self.next_xid += 1;
            m.encode(self.next_xid, &mut out).map_err(invalid)?;
            xids.push(self.next_xid);
            if out.len() > 1 << 20 {
                self.stream.write_all(&out)?;
                out.clear();
            }
        }
        self.stream.write_all(&out)?;
        Ok(xids)
    }

    /// Send raw bytes (malformed messages).
    ///
    /// # Errors
    /// I/O.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next message, waiting up to `timeout` (`None`: nothing came). ECHO_REQUESTs
    /// from the switch are answered and also returned.
    ///
    /// # Errors
    /// I/O, the switch closed the connection (`UnexpectedEof`), or it sent something
    /// the codec cannot decode.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Option<(Header, Message)>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = framing::next_frame(&mut self.buf).map_err(invalid)? {
                let (h, m) = Message::decode(&f.bytes).map_err(invalid)?;
                if let Message::EchoRequest(e) = &m {
                    self.send_xid(h.xid, &Message::EchoReply(e.reply()))?;
                    self.echoes_answered += 1;
                }
                return Ok(Some((h, m)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 1 << 16];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "switch closed",
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Messages until one satisfies `pred` (returned last), within `timeout`.
    ///
    /// # Errors
    /// As [`ScriptedController::recv`]; `TimedOut` if none came.
    pub fn recv_until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Header, &Message) -> bool,
    ) -> io::Result<Vec<(Header, Message)>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((h, m)) = self.recv(left)? else {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out; received {got:?}"),
                ));
            };
            let done = pred(&h, &m);
            got.push((h, m));
            if done {
                return Ok(got);
            }
        }
    }

    /// Send BARRIER_REQUEST and return everything received up to and including its
    /// reply.
    ///
    /// # Errors
    /// As [`ScriptedController::recv_until`].
    pub fn barrier(&mut self, timeout: Duration) -> io::Result<Vec<(Header, Message)>> {
        let xid = self.send(&Message::BarrierRequest)?;
        self.recv_until(timeout, |h, m| {
            h.xid == xid && matches!(m, Message::BarrierReply)
        })
    }

    /// Send a request and return its reply messages (all parts of a multipart reply),
    /// skipping unrelated asynchronous messages.
    ///
    /// # Errors
    /// As [`ScriptedController::recv_until`].
    pub fn request(&mut self, msg: &Message, timeout: Duration) -> io::Result<Vec<Message>> {
        let xid = self.send(msg)?;
        let mut out = Vec::new();
        self.recv_until(timeout, |h, m| {
            if h.xid != xid {
                return false;
            }
            out.push(m.clone());
            !matches!(m, Message::MultipartReply(r) if r.more())
        })?;
        Ok(out)
    }

    /// Close the connection.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// The raw bytes buffered but not yet decoded.
    #[must_use]
    pub fn pending(&self) -> Bytes {
        Bytes::copy_from_slice(&self.buf)
    }
}
