//! Where each HTTP/1.x request begins and ends in a client's byte stream: heads are parsed
//! with httparse (hyper's own parser) and checked by [`validate::check_head`], bodies are
//! followed by their `Content-Length` or chunk by chunk, so that every head is checked as
//! sent, including the pipelined ones behind a body. Pure: bytes in, a step out.

use crate::h2_guard::PREFACE;
use crate::validate::{self, BodyFraming, Refusal};
use http::StatusCode;

/// Most bytes a request head may take (hyper's own limit is larger; nginx allows 4 × 8 KiB
/// of header lines): beyond, 431. Above hyper's 65,534-byte target limit so that long
/// targets still get hyper's 414.
pub(crate) const MAX_HEAD: usize = 128 * 1024;
/// Most header lines in a head, as hyper's default: beyond, 431.
pub(crate) const MAX_HEADERS: usize = 100;
/// Most bytes of chunk extensions in one body (hyper allows 16 KiB).
const MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;
/// Most bytes of trailer lines after the last chunk.
const MAX_TRAILERS: usize = 64 * 1024;

/// What the bytes at the front of a slice are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// This many bytes (at least one) are checked and may be handed on.
    Pass(usize),
    /// The front is the start of a request head (or of the HTTP/2 preface) that is not
    /// complete yet: nothing may be handed on before more bytes arrive.
    Partial,
    /// The head at the front is refused: answer it, hand nothing of it on.
    Refuse(Refusal),
    /// A body broke its framing: the request must fail, and the connection with it.
    Broken,
}

/// Where the stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The connection's first bytes: HTTP/2's preface, or a first head.
    Start,
    /// Expecting a request head.
    Head,
    /// Within a body of this many more bytes.
    Length(u64),
    /// Within a chunked body.
    Chunked(Chunk),
    /// HTTP/2 with prior knowledge, or a WebSocket tunnel: not HTTP/1.x any more.
    Through,
}

/// Where a chunked body stands (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the chunk size: its value and how many hex digits so far.
    Size(u64, u8),
    /// Whitespace after the size.
    SizeSpace(u64),
    /// A chunk extension, up to the end of the line.
    Extension(u64),
    /// The LF ending the size line.
    SizeLf(u64),
    /// Chunk data still to come.
    Data(u64),
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// After the last chunk: the start of a trailer line, or of the final empty line.
    LineStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF ending the body.
    EndLf,
}

/// Follows one client connection's requests.
#[derive(Debug)]
pub(crate) struct Framing {
    state: State,
    /// Bytes of the pending head already searched for its end, so that a head arriving in
    /// many small pieces is parsed once, not once per piece.
    searched: usize,
    /// Chunk-extension and trailer bytes of the current body.
    extensions: usize,
    trailers: usize,
}

impl Framing {
    /// A connection before its first byte.
    pub(crate) fn new() -> Self {
        Self { state: State::Start, searched: 0, extensions: 0, trailers: 0 }
    }

    /// Follows one chunked body from its first chunk (a backend's response body, for
    /// the proxy-native path): once it has ended, [`Framing::awaits_head`] is true.
    pub(crate) fn chunked_body() -> Self {
        Self { state: State::Chunked(Chunk::Size(0, 0)), ..Self::new() }
    }

    /// True while the next bytes are (or start) a request head, rather than a body or a
    /// stream no longer read as HTTP/1.x.
    pub(crate) fn awaits_head(&self) -> bool {
        matches!(self.state, State::Start | State::Head)
    }

    /// Reads the front of `bytes` (never empty), which starts where the last step ended;
    /// after `Partial`, the next call gets the same front with more bytes behind it.
    pub(crate) fn step(&mut self, bytes: &[u8]) -> Step {
        match self.state {
            State::Through => Step::Pass(bytes.len()),
            State::Start => match is_preface(bytes) {
                Some(false) => {
                    self.state = State::Head;
                    self.head(bytes)
                }
                None => Step::Partial,
                Some(true) => {
                    self.state = State::Through;
                    Step::Pass(bytes.len())
                }
            },
            State::Head => self.head(bytes),
            State::Length(left) => {
                let take = left.min(bytes.len() as u64);
                self.state = if take == left { State::Head } else { State::Length(left - take) };
                Step::Pass(take as usize)
            }
            State::Chunked(chunk) => self.chunked(chunk, bytes),
        }
    }

    fn head(&mut self, bytes: &[u8]) -> Step {
        // Empty lines before a request line are skipped by every HTTP/1.1 parser (RFC 9112
        // §2.2): pass them, so that an empty line found later always ends a head.
        let empty = leading_empty_lines(bytes);
        if empty > 0 {
            return Step::Pass(empty);
        }
        if bytes == b"\r" {
            return Step::Partial;
        }
        let mut headers = head_slots();
        let (length, verdict) = match parse_head(bytes, &mut self.searched, &mut headers) {
            Head::Complete { length, verdict, .. } => (length, verdict),
            Head::Partial => return Step::Partial,
            Head::Refused(refusal) => return Step::Refuse(refusal),
        };
        self.extensions = 0;
        self.trailers = 0;
        self.state = match verdict.body {
            _ if verdict.tunnel => State::Through,
            BodyFraming::Empty => State::Head,
            BodyFraming::Length(left) => State::Length(left),
            BodyFraming::Chunked => State::Chunked(Chunk::Size(0, 0)),
        };
        Step::Pass(length)
    }

    /// Follows a chunked body through `bytes`; passes up to its end, or all of them. A
    /// byte that breaks the framing stops it: the bytes before it pass first, so that the
    /// outcome does not depend on how the stream was cut into reads.
    fn chunked(&mut self, mut chunk: Chunk, bytes: &[u8]) -> Step {
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            at += 1;
            let next = match (chunk, byte) {
                (Chunk::Data(left), _) => {
                    // The data itself, in one move.
                    let take = left.min((bytes.len() - at + 1) as u64);
                    at += take as usize - 1;
                    Some(if take == left { Chunk::DataCr } else { Chunk::Data(left - take) })
                }
                (Chunk::Size(size, digits), _) if byte.is_ascii_hexdigit() => {
                    let digit = (byte as char).to_digit(16).unwrap_or(0);
                    (digits < 16).then(|| Chunk::Size(size << 4 | u64::from(digit), digits + 1))
                }
                (Chunk::Size(_, 0), _) => None,
                (Chunk::Size(size, _) | Chunk::SizeSpace(size), b' ' | b'\t') => Some(Chunk::SizeSpace(size)),
                (Chunk::Size(size, _) | Chunk::SizeSpace(size), b';') => Some(Chunk::Extension(size)),
                (Chunk::Size(size, _) | Chunk::SizeSpace(size) | Chunk::Extension(size), b'\r') => {
                    Some(Chunk::SizeLf(size))
                }
                (Chunk::Extension(_), b'\n') => None,
                (Chunk::Extension(size), _) => {
                    self.extensions += 1;
                    (self.extensions <= MAX_CHUNK_EXTENSIONS).then_some(Chunk::Extension(size))
                }
                (Chunk::SizeLf(0), b'\n') => Some(Chunk::LineStart),
                (Chunk::SizeLf(size), b'\n') => Some(Chunk::Data(size)),
                (Chunk::DataCr, b'\r') => Some(Chunk::DataLf),
                (Chunk::DataLf, b'\n') => Some(Chunk::Size(0, 0)),
                (Chunk::LineStart, b'\r') => Some(Chunk::EndLf),
                (Chunk::EndLf, b'\n') => {
                    self.state = State::Head;
                    return Step::Pass(at);
                }
                (Chunk::LineStart | Chunk::Trailer, _) if byte != b'\n' => {
                    self.trailers += 1;
                    let next = if byte == b'\r' { Chunk::TrailerLf } else { Chunk::Trailer };
                    (self.trailers <= MAX_TRAILERS).then_some(next)
                }
                (Chunk::TrailerLf, b'\n') => Some(Chunk::LineStart),
                _ => None,
            };
            match next {
                Some(next) => chunk = next,
                None if at > 1 => {
                    self.state = State::Chunked(chunk);
                    return Step::Pass(at - 1);
                }
                None => return Step::Broken,
            }
        }
        self.state = State::Chunked(chunk);
        Step::Pass(at)
    }
}

/// Room for the header lines of one head, uninitialised: no 100-entry fill per head
/// (httparse writes what it parses).
pub(crate) type HeadSlots<'b> = [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Empty [`HeadSlots`].
pub(crate) fn head_slots<'b>() -> HeadSlots<'b> {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}

/// What the front of a connection's bytes holds, read as a request head.
pub(crate) enum Head<'h, 'b> {
    /// A complete head of `length` bytes that passed [`validate::check_head`].
    Complete { request: httparse::Request<'h, 'b>, length: usize, verdict: validate::HeadVerdict },
    /// Not complete yet: more bytes are needed.
    Partial,
    /// Refused: answer it and close.
    Refused(Refusal),
}

/// Parses and checks the request head at the front of `bytes` (no leading empty line).
/// `searched` is how many of these bytes an earlier call already looked through for the
/// end of the head (so a head arriving in many small pieces is parsed once); it is reset
/// when a head is complete.
pub(crate) fn parse_head<'h, 'b>(bytes: &'b [u8], searched: &mut usize, slots: &'h mut HeadSlots<'b>) -> Head<'h, 'b> {
    // Parse only once the end of a head (an empty line) may be there.
    let from = (*searched).min(bytes.len()).saturating_sub(3);
    let ended = may_end_a_head(&bytes[from..]);
    *searched = bytes.len();
    if !ended {
        return if bytes.len() > MAX_HEAD { too_large() } else { Head::Partial };
    }
    let mut request = httparse::Request::new(&mut []);
    let length = match request.parse_with_uninit_headers(bytes, slots) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD => return too_large(),
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return too_large(),
        Err(_) => return Head::Refused(Refusal { status: StatusCode::BAD_REQUEST, close: true }),
    };
    if length > MAX_HEAD {
        return too_large();
    }
    *searched = 0;
    match validate::check_head(&request) {
        Ok(verdict) => Head::Complete { request, length, verdict },
        Err(refusal) => Head::Refused(refusal),
    }
}

fn too_large<'h, 'b>() -> Head<'h, 'b> {
    Head::Refused(Refusal { status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, close: true })
}

/// Whether `bytes`, a connection's first, are HTTP/2's connection preface: `None` while
/// they are too few to tell.
pub(crate) fn is_preface(bytes: &[u8]) -> Option<bool> {
    let take = bytes.len().min(PREFACE.len());
    if bytes[..take] != PREFACE[..take] {
        return Some(false);
    }
    (take == PREFACE.len()).then_some(true)
}

/// How many bytes of empty lines (`\r\n` or `\n`) `bytes` start with.
pub(crate) fn leading_empty_lines(bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match &bytes[at..] {
            [b'\n', ..] => at += 1,
            [b'\r', b'\n', ..] => at += 2,
            _ => return at,
        }
    }
}

/// True when `bytes` hold an empty line (`\n\n` or `\n\r\n`), which ends a head; stops at
/// the first.
pub(crate) fn may_end_a_head(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|b| *b == b'\n') {
        rest = &rest[at + 1..];
        if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::follow as run;

    const TWO: &[u8] = b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";

    #[test]
    fn pipelined_requests_pass_whole_in_any_pieces() {
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(run(TWO, piece), (TWO.len(), None), "pieces of {piece}");
        }
    }

    #[test]
    fn a_smuggled_head_behind_a_body_is_checked() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /x#f HTTP/1.1\r\nHost: a\r\n\r\n";
        let first = raw.len() - "GET /x#f HTTP/1.1\r\nHost: a\r\n\r\n".len();
        for piece in [1, 5, 1000] {
            let (passed, step) = run(raw, piece);
            assert_eq!(passed, first);
            assert!(matches!(step, Some(Step::Refuse(r)) if r.status == StatusCode::BAD_REQUEST));
        }
    }

    #[test]
    fn broken_chunks_break_the_body() {
        let post = |body: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let bodies = ["zz\r\n", "5\r\nhelloX", "5\r\nhello\rX", ";x\r\n", "5;a\nb\r\n", "11111111111111111\r\n"];
        // The last was found by fuzzing: the bytes passed before the break differed by piece.
        for body in bodies.into_iter().chain(["1\r\n\r\n\r\n"]) {
            let raw = post(body);
            assert_eq!(run(raw.as_bytes(), 3).1, Some(Step::Broken), "{body:?}");
            assert_eq!(run(raw.as_bytes(), 1), run(raw.as_bytes(), 4096), "{body:?}");
        }
        let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_EXTENSIONS + 1));
        assert_eq!(run(post(&long).as_bytes(), 4096).1, Some(Step::Broken));
    }

    #[test]
    fn empty_lines_before_a_head_pass() {
        let raw = b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for piece in [1, 2, 100] {
            assert_eq!(run(raw, piece), (raw.len(), None));
        }
        // Found unparsable whether whole or byte by byte (fuzzing found the two differed).
        let raw = b"\r\n\r\nGET\xff\xff GET / HTTP/1.0\r\n\r\xff\n\xff";
        for piece in [1, 100] {
            assert!(matches!(run(raw, piece), (4, Some(Step::Refuse(_)) | Some(Step::Partial))), "{piece}");
        }
        assert_eq!(run(raw, 1), run(raw, 100));
    }

    #[test]
    fn http2_preface_is_let_through() {
        let raw = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        assert_eq!(run(raw, 5), (raw.len(), None));
    }

    #[test]
    fn websocket_tunnels_are_let_through() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85garbage";
        assert_eq!(run(raw, 4), (raw.len(), None));
    }

    #[test]
    fn oversized_and_unparsable_heads_are_refused() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "x".repeat(MAX_HEAD));
        let status = |raw: &[u8], piece| match run(raw, piece).1 {
            Some(Step::Refuse(r)) => r.status.as_u16(),
            other => panic!("{other:?}"),
        };
        assert_eq!(status(big.as_bytes(), 4096), 431);
        assert_eq!(status(&big.as_bytes()[..MAX_HEAD + 10], 4096), 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), 100), 431);
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 100), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 100), 400);
    }
}
