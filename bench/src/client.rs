//! A minimal HTTP/1.1 keep-alive client over a blocking `TcpStream`: one request at a time,
//! `GET` only, bodies read and discarded. Enough to load a server without a client crate.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long any read or write may block before the request counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive connection to a server; reconnects when the server closed it.
#[derive(Debug)]
pub struct Client {
    /// The server's address.
    addr: SocketAddr,
    /// The open connection, if any.
    conn: Option<BufReader<TcpStream>>,
    /// Reused buffer for head lines.
    line: String,
    /// Reused buffer for discarded bodies.
    scratch: Vec<u8>,
}

impl Client {
    /// Creates a client for `addr` and opens its connection.
    ///
    /// # Errors
    ///
    /// If the connection cannot be opened.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let mut client = Client {
            addr,
            conn: None,
            line: String::new(),
            scratch: vec![0; 16 * 1024],
        };
        client.reconnect()?;
        Ok(client)
    }

    /// Replaces the connection with a new one.
    fn reconnect(&mut self) -> io::Result<()> {
        let stream = TcpStream::connect(self.addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        self.conn = Some(BufReader::new(stream));
        Ok(())
    }

    /// Sends `GET path` and reads the whole response; returns its status code.
    ///
    /// A connection the server closed while idle is reopened and the request sent again once.
    ///
    /// # Errors
    ///
    /// If the request cannot be sent or the response is malformed or late.
    pub fn get(&mut self, path: &str) -> io::Result<u16> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        let fresh = self.conn.is_none();
        if fresh {
            self.reconnect()?;
        }
        match self.exchange(request.as_bytes()) {
            Ok(status) => Ok(status),
            // A keep-alive connection may have been closed by the server meanwhile.
            Err(e) if !fresh && e.kind() == io::ErrorKind::UnexpectedEof => {
                self.reconnect()?;
                self.exchange(request.as_bytes())
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// Writes `request` on the open connection and reads one response.
    fn exchange(&mut self, request: &[u8]) -> io::Result<u16> {
        let conn = self.conn.as_mut().expect("connected");
        conn.get_mut().write_all(request)?;

        // Status line, then headers up to the blank line.
        self.line.clear();
        if conn.read_line(&mut self.line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {:?}", self.line)))?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            self.line.clear();
            if conn.read_line(&mut self.line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad(format!("bad header line {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().map_err(|_| bad("bad content-length"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }

        // The body, discarded.
        if chunked {
            loop {
                self.line.clear();
                conn.read_line(&mut self.line)?;
                let size = self.line.trim_end().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
                discard(conn, &mut self.scratch, size + 2)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            discard(conn, &mut self.scratch, length)?;
        }
        if close {
            self.conn = None;
        }
        Ok(status)
    }
}

/// Reads and drops exactly `n` bytes.
fn discard(conn: &mut BufReader<TcpStream>, scratch: &mut [u8], mut n: usize) -> io::Result<()> {
    while n > 0 {
        let take = n.min(scratch.len());
        conn.read_exact(&mut scratch[..take])?;
        n -= take;
    }
    Ok(())
}

/// An `InvalidData` error with `message`.
fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}
