//! An incremental decoder for the chunked transfer coding (RFC 9112 §7.1), strict and bounded.
//!
//! It consumes bytes as they arrive and appends the data to an output buffer. Chunk sizes are
//! hex digits only (at most 16 of them), extensions and trailers are bounded and discarded, and
//! every line must end with CRLF.
//!
//! A chunk-size line follows RFC 9112 §7.1.1 exactly, as llhttp, Go and hyper do:
//!
//! ```text
//! chunk-size     = 1*HEXDIG
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-name = token
//! chunk-ext-val  = token / quoted-string
//! ```
//!
//! So whitespace after the size is only allowed before a `;` (`a \r\n` is refused), an
//! extension needs a name (`2;\r\n` is refused), and a quoted value must be closed before the
//! line ends (`5;a="abc\r\n` is refused). A peer that reads these lines more leniently than we
//! do could otherwise find a different chunk boundary.

use super::grammar::{is_ows, is_qdtext, is_quoted_pair_byte, is_token_byte};
use super::parse::{reject, Reject};

/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 4096;

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// Whitespace (BWS) that must lead to a `;`: after the size or after an extension value.
    ExtSemicolon,
    /// After a `;`: optional whitespace, then an extension name.
    ExtNameStart,
    /// Inside an extension name.
    ExtName,
    /// Whitespace after an extension name: then `=` or `;`.
    ExtNameEnd,
    /// After `=`: optional whitespace, then a token or a quoted string.
    ExtValueStart,
    /// Inside a token extension value.
    ExtToken,
    /// Inside a quoted extension value.
    ExtQuoted,
    /// After a backslash inside a quoted value.
    ExtQuotedPair,
    /// Right after the closing quote: `;`, whitespace or CR.
    ExtQuoteEnd,
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
                State::Size
                | State::ExtSemicolon
                | State::ExtNameStart
                | State::ExtName
                | State::ExtNameEnd
                | State::ExtValueStart
                | State::ExtToken
                | State::ExtQuoted
                | State::ExtQuotedPair
                | State::ExtQuoteEnd => {
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

    /// Handles one byte of a chunk-size line: the size, then the extensions.
    fn size_line_byte(&mut self, b: u8, body_len: usize, limit: usize) -> Result<(), Reject> {
        if self.state != State::Size {
            return self.extension_byte(b);
        }
        if b.is_ascii_hexdigit() {
            self.digits += 1;
            let digit = u64::from((b as char).to_digit(16).expect("checked hex digit"));
            if self.digits > 16 {
                return Err(reject(400, "chunk size too long"));
            }
            self.size = self.size * 16 + digit;
            if self.size > (limit - body_len.min(limit)) as u64 {
                return Err(reject(413, "request body too large"));
            }
            return Ok(());
        }
        if self.digits == 0 {
            return Err(reject(400, "invalid chunk size"));
        }
        self.state = match b {
            b'\r' => State::SizeLf,
            b';' => State::ExtNameStart,
            _ if is_ows(b) => State::ExtSemicolon,
            _ => return Err(reject(400, "invalid chunk size line")),
        };
        Ok(())
    }

    /// Handles one byte of the chunk extensions, by the grammar in the module docs.
    fn extension_byte(&mut self, b: u8) -> Result<(), Reject> {
        use State::*;
        self.state = match (self.state, b) {
            // The line may end after a complete name or value, never inside BWS.
            (ExtName | ExtToken | ExtQuoteEnd, b'\r') => SizeLf,
            (ExtSemicolon | ExtName | ExtNameEnd | ExtToken | ExtQuoteEnd, b';') => ExtNameStart,
            (ExtName | ExtNameEnd, b'=') => ExtValueStart,
            (ExtName, _) if is_ows(b) => ExtNameEnd,
            (ExtToken | ExtQuoteEnd, _) if is_ows(b) => ExtSemicolon,
            (ExtSemicolon | ExtNameStart | ExtNameEnd | ExtValueStart, _) if is_ows(b) => {
                self.state
            }
            (ExtNameStart | ExtName, _) if is_token_byte(b) => ExtName,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart | ExtToken, _) if is_token_byte(b) => ExtToken,
            (ExtQuoted, b'"') => ExtQuoteEnd,
            (ExtQuoted, b'\\') => ExtQuotedPair,
            (ExtQuoted, _) if is_qdtext(b) => ExtQuoted,
            (ExtQuotedPair, _) if is_quoted_pair_byte(b) => ExtQuoted,
            (ExtNameStart, b'\r') => return Err(reject(400, "chunk extension without a name")),
            (ExtQuoted | ExtQuotedPair, b'\r') => {
                return Err(reject(400, "unterminated quoted string in chunk extension"))
            }
            _ => return Err(reject(400, "invalid chunk extension")),
        };
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

    /// Decodes `line` as the first chunk-size line of a body, then `aa` and the last chunk.
    fn size_line(line: &str) -> Result<Vec<u8>, Reject> {
        let input = format!("{line}\r\naa\r\n0\r\n\r\n");
        decode_all(input.as_bytes(), 100).map(|(out, _)| out)
    }

    #[test]
    fn accepts_every_form_of_the_extension_grammar() {
        for line in [
            "2",
            "02",
            "2;a",
            "2;a=b",
            "2;a=b;c;d=e",
            "2 ;a",
            "2\t; a",
            "2; a = b",
            "2;a =b ;c",
            "2;a=\"\"",
            "2;a=\"x y;z=w\"",
            "2;a=\"I \\\"love\\\" \\\\ext\\\\\";b=\"c\"",
            "2;a=\"q\" ;b",
            "2;!#$%&'*+-.^_`|~=x",
            "2;a=\"\u{e9}\"",
        ] {
            assert_eq!(size_line(line).as_deref(), Ok(&b"aa"[..]), "{line:?}");
        }
    }

    #[test]
    fn refuses_what_the_extension_grammar_does_not_allow() {
        for line in [
            // An extension with no name.
            "2;",
            "2; ",
            "2;;a",
            "2;=b",
            // An unbalanced quoted string, or a bad byte inside one.
            "2;a=\"abc",
            "2;a=\"abc\\",
            "2;a=\"ab\u{7f}c\"",
            // Whitespace after the size (or a value, or a name) with nothing after it.
            "2 ",
            "2\t",
            "2;a ",
            "2;a=b ",
            "2;a=\"b\" ",
            "2;a= ",
            // Something other than `;` after whitespace, or bad bytes in names and values.
            "2 erfrferferf",
            "2 a",
            "2;a b",
            "2;a=b c",
            "2;a=b\"",
            "2;a=\"b\"c",
            "2;a==b",
            "2;a=(b)",
            "2;a@b",
            "2;\u{e9}",
        ] {
            let err = size_line(line).expect_err(line);
            assert_eq!(err.status, 400, "{line:?}");
        }
    }

    #[test]
    fn grammar_holds_when_the_line_arrives_byte_by_byte() {
        for (line, ok) in [
            ("5;a=\"x;\\\"y\" ;b", true),
            ("5;a=\"abc", false),
            ("5 ", false),
        ] {
            let input = format!("{line}\r\nhello\r\n0\r\n\r\n");
            let mut decoder = ChunkedDecoder::new(1024, 10);
            let mut out = Vec::new();
            let result = input
                .as_bytes()
                .chunks(1)
                .try_for_each(|byte| decoder.decode(byte, &mut out, 100).map(|_| ()));
            assert_eq!(result.is_ok(), ok, "{line:?}");
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
