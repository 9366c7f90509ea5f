//! An incremental decoder for the chunked transfer coding (RFC 9112 §7.1), strict and bounded.
//!
//! It consumes bytes as they arrive and appends the data to an output buffer. Chunk sizes are
//! hex digits only (at most 16 of them), extensions and trailers are bounded and discarded, and
//! every line must end with CRLF.

use super::parse::{reject, Reject};
use crate::response::is_token_byte;

/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 4096;

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// After the size: optional whitespace, then `;` extensions or CR.
    SizeTail,
    /// Inside chunk extensions, up to CR.
    Extension,
    /// Expecting the LF that ends the size line.
    SizeLf,
    /// Copying chunk data; this many bytes remain.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final blank line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting the LF that ends a trailer line.
    TrailerLf,
    /// Expecting the LF of the final blank line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Decodes one chunked body.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    /// Current state.
    state: State,
    /// The chunk size being read.
    size: u64,
    /// Hex digits read for the current size.
    digits: usize,
    /// Length of the current size line (bounded by [`MAX_SIZE_LINE`]).
    line: usize,
    /// Bytes of trailer section read so far (bounded by `max_trailer`).
    trailer_bytes: usize,
    /// Trailer fields read so far (bounded by `max_trailers`).
    trailers: usize,
    /// Whether the current trailer line has its colon yet.
    trailer_colon: bool,
    /// Largest trailer section.
    max_trailer: usize,
    /// Most trailer fields.
    max_trailers: usize,
}

/// What one decoding step achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Input bytes consumed.
    pub(crate) consumed: usize,
    /// `true` once the whole body, trailers included, has been read.
    pub(crate) done: bool,
}

impl ChunkedDecoder {
    /// Creates a decoder whose trailer section is bounded like a request head.
    pub(crate) fn new(max_trailer: usize, max_trailers: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
            trailer_bytes: 0,
            trailers: 0,
            trailer_colon: false,
            max_trailer,
            max_trailers,
        }
    }

    /// Decodes as much of `input` as possible, appending data to `out`.
    ///
    /// # Errors
    ///
    /// 400 for any syntax error; 413 if the body would grow past `limit` bytes.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<Progress, Reject> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            let b = input[i];
            match self.state {
                State::Data(remaining) => {
                    let take =
                        (input.len() - i).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Size | State::SizeTail | State::Extension => {
                    self.line += 1;
                    if self.line > MAX_SIZE_LINE {
                        return Err(reject(400, "chunk size line too long"));
                    }
                    self.size_line_byte(b, out.len(), limit)?;
                }
                State::SizeLf => {
                    expect(b, b'\n')?;
                    self.line = 0;
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(self.size)
                    };
                }
                State::DataCr => {
                    expect(b, b'\r')?;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    expect(b, b'\n')?;
                    self.state = State::Size;
                    self.size = 0;
                    self.digits = 0;
                }
                State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf => {
                    self.trailer_byte(b)?;
                }
                State::Done => unreachable!("loop stops at Done"),
            }
            i += 1;
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// Handles one byte of a chunk-size line.
    fn size_line_byte(&mut self, b: u8, body_len: usize, limit: usize) -> Result<(), Reject> {
        match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                self.digits += 1;
                let digit = u64::from((b as char).to_digit(16).expect("checked hex digit"));
                if self.digits > 16 {
                    return Err(reject(400, "chunk size too long"));
                }
                self.size = self.size * 16 + digit;
                if self.size > (limit - body_len.min(limit)) as u64 {
                    return Err(reject(413, "request body too large"));
                }
            }
            (State::Size, _) if self.digits == 0 => {
                return Err(reject(400, "invalid chunk size"));
            }
            (State::Size | State::SizeTail, b' ' | b'\t') => self.state = State::SizeTail,
            (State::Size | State::SizeTail, b';') => self.state = State::Extension,
            (State::Size | State::SizeTail | State::Extension, b'\r') => self.state = State::SizeLf,
            (State::Extension, _) if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => {}
            _ => return Err(reject(400, "invalid chunk size line")),
        }
        Ok(())
    }

    /// Handles one byte of the trailer section.
    fn trailer_byte(&mut self, b: u8) -> Result<(), Reject> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer {
            return Err(reject(431, "chunked trailer section too large"));
        }
        match self.state {
            State::TrailerStart => match b {
                b'\r' => self.state = State::EndLf,
                b' ' | b'\t' => return Err(reject(400, "folded trailer line")),
                _ if is_token_byte(b) => {
                    self.trailers += 1;
                    if self.trailers > self.max_trailers {
                        return Err(reject(431, "too many trailer fields"));
                    }
                    self.trailer_colon = false;
                    self.state = State::Trailer;
                }
                _ => return Err(reject(400, "invalid trailer field")),
            },
            State::Trailer => match b {
                b'\r' if self.trailer_colon => self.state = State::TrailerLf,
                b':' if !self.trailer_colon => self.trailer_colon = true,
                _ if !self.trailer_colon && is_token_byte(b) => {}
                _ if self.trailer_colon
                    && (b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80) => {}
                _ => return Err(reject(400, "invalid trailer field")),
            },
            State::TrailerLf => {
                expect(b, b'\n')?;
                self.state = State::TrailerStart;
            }
            State::EndLf => {
                expect(b, b'\n')?;
                self.state = State::Done;
            }
            _ => unreachable!("only trailer states come here"),
        }
        Ok(())
    }
}

/// Requires `b` to be `want`.
fn expect(b: u8, want: u8) -> Result<(), Reject> {
    if b == want {
        Ok(())
    } else {
        Err(reject(400, "malformed chunked body (expected CRLF)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], limit: usize) -> Result<(Vec<u8>, usize), Reject> {
        let mut decoder = ChunkedDecoder::new(1024, 10);
        let mut out = Vec::new();
        let progress = decoder.decode(input, &mut out, limit)?;
        assert!(
            progress.done,
            "not done: {:?}",
            String::from_utf8_lossy(input)
        );
        Ok((out, progress.consumed))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (out, used) =
            decode_all(b"5\r\nhello\r\n6;a=b\r\n world\r\n0\r\n\r\nNEXT", 100).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(used, 30);
        let (out, _) = decode_all(b"A \t;x\r\n0123456789\r\n0\r\nX-T: v\r\n\r\n", 100).unwrap();
        assert_eq!(out, b"0123456789");
    }

    #[test]
    fn byte_at_a_time_gives_the_same_result() {
        let input = b"3\r\nabc\r\n2;e\r\nde\r\n0\r\nT: 1\r\n\r\n";
        let mut decoder = ChunkedDecoder::new(1024, 10);
        let mut out = Vec::new();
        let mut done = false;
        for byte in input.chunks(1) {
            let p = decoder.decode(byte, &mut out, 100).unwrap();
            assert_eq!(p.consumed, 1);
            done = p.done;
        }
        assert!(done);
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn rejects_malformed_sizes() {
        let cases: [&[u8]; 8] = [
            b"x\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b"0x5\r\n",
            b"11111111111111111\r\n",
            b"5\nhello",
            b"5\r\nhelloXX",
            b";ext\r\n",
        ];
        for case in cases {
            let mut out = Vec::new();
            let err = ChunkedDecoder::new(1024, 10)
                .decode(case, &mut out, usize::MAX)
                .expect_err(&String::from_utf8_lossy(case));
            assert_eq!(err.status, 400, "{:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn enforces_body_and_trailer_limits() {
        let mut out = Vec::new();
        let err = ChunkedDecoder::new(1024, 10)
            .decode(b"ffffffffffffffff\r\n", &mut out, 1000)
            .unwrap_err();
        assert_eq!(err.status, 413);
        let err = ChunkedDecoder::new(1024, 10)
            .decode(b"5\r\nhello\r\n5\r\nhello\r\n", &mut out, 8)
            .unwrap_err();
        assert_eq!(err.status, 413);
        let long_ext = format!("1;{}\r\n", "e".repeat(5000));
        let err = ChunkedDecoder::new(1024, 10)
            .decode(long_ext.as_bytes(), &mut out, 100)
            .unwrap_err();
        assert_eq!(err.status, 400);
        let trailers = format!("0\r\n{}\r\n", "T: v\r\n".repeat(20));
        let err = ChunkedDecoder::new(1024, 10)
            .decode(trailers.as_bytes(), &mut out, 100)
            .unwrap_err();
        assert_eq!(err.status, 431);
        assert_eq!(
            ChunkedDecoder::new(1024, 10)
                .decode(b"0\r\n folded\r\n\r\n", &mut out, 100)
                .unwrap_err()
                .status,
            400
        );
    }
}
