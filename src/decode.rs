//! Response `Content-Encoding` decoding: `gzip` (RFC 1952), `deflate` (RFC 1950 zlib-wrapped, as
//! RFC 9110 §8.4.1.2 defines it, with raw RFC 1951 DEFLATE tolerated since some servers send
//! that) and `br` (RFC 7932 Brotli), for upstreams that compress despite
//! `accept-encoding: identity`.
//!
//! Decoding is incremental: network chunks are pushed as they pass, split anywhere (inside a gzip
//! header, inside a DEFLATE block, inside a trailer), and decoded bytes come out as soon as the
//! decoder has them. Output is bounded: the caller gives a limit on the total decoded bytes, and
//! decoding stops for good once it is reached ([`BodyDecoder::capped`]), so a decompression bomb
//! costs at most `limit` bytes of output and the CPU to make them. Decoded bytes leave through a
//! fixed working buffer, so memory stays bounded whatever the compression ratio. Corrupt input is
//! an error, never a panic; the filter only ever decodes copies, so traffic is unaffected.
//!
//! DEFLATE is `miniz_oxide`'s streaming inflate, with the gzip member header and trailer
//! (CRC-32, ISIZE) parsed here; Brotli is `brotli-decompressor` in strict mode (no large-window
//! streams), whose ring buffer grows with the output rather than being the whole window up front.
//! No host calls.

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
use std::fmt;

/// Size of the working buffer decoded bytes pass through.
const WORK_BUFFER: usize = 8 * 1024;

/// Why a compressed body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The gzip member header is not valid (a deflate body whose first bytes are no zlib
    /// header is read as raw DEFLATE instead).
    Header,
    /// The compressed data is corrupt.
    Corrupt,
    /// The gzip trailer's CRC-32 or length does not match the decoded data.
    Checksum,
    /// The body ended before the compressed stream did.
    Truncated,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Header => "invalid header",
            DecodeError::Corrupt => "corrupt compressed data",
            DecodeError::Checksum => "checksum or length mismatch",
            DecodeError::Truncated => "body ends inside the compressed data",
        })
    }
}

impl std::error::Error for DecodeError {}

/// An incremental decoder for one response body of a known `Content-Encoding`.
pub struct BodyDecoder {
    codec: Codec,
    work: Box<[u8]>,
    produced: usize,
    capped: bool,
    failed: bool,
    seen_input: bool,
}

enum Codec {
    Gzip(Box<Gzip>),
    Deflate(Box<Deflate>),
    Brotli(Box<Brotli>),
}

impl fmt::Debug for BodyDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyDecoder")
            .field("encoding", &self.encoding())
            .field("produced", &self.produced)
            .field("capped", &self.capped)
            .field("failed", &self.failed)
            .finish()
    }
}

/// Whether a `Content-Encoding` value names no coding at all: empty, `identity`, or a list of
/// only those.
pub fn is_identity(encoding: &str) -> bool {
    encoding
        .split(',')
        .map(str::trim)
        .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"))
}

impl BodyDecoder {
    /// A decoder for a `Content-Encoding` header value: `gzip` (or `x-gzip`), `deflate` or `br`,
    /// case-insensitively, optionally listed with `identity`. `None` for identity, an empty
    /// value, unknown codings (`zstd`, `compress`, …) and stacked codings (`gzip, br`).
    pub fn for_encoding(encoding: &str) -> Option<Self> {
        let mut codings = encoding
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        let coding = codings.next()?;
        if codings.next().is_some() {
            return None;
        }
        let codec = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")
        {
            Codec::Gzip(Box::new(Gzip::new()))
        } else if coding.eq_ignore_ascii_case("deflate") {
            Codec::Deflate(Box::new(Deflate::new()))
        } else if coding.eq_ignore_ascii_case("br") {
            Codec::Brotli(Box::new(Brotli::new()))
        } else {
            return None;
        };
        Some(BodyDecoder {
            codec,
            work: Vec::new().into_boxed_slice(),
            produced: 0,
            capped: false,
            failed: false,
            seen_input: false,
        })
    }

    /// The coding decoded: `gzip`, `deflate` or `br`.
    pub fn encoding(&self) -> &'static str {
        match self.codec {
            Codec::Gzip(_) => "gzip",
            Codec::Deflate(_) => "deflate",
            Codec::Brotli(_) => "br",
        }
    }

    /// Decodes one chunk of the compressed body, appending the decoded bytes to `out`.
    ///
    /// `limit` bounds the total number of bytes this decoder ever produces (over all calls, not
    /// per call): once reached, output is cut there, [`BodyDecoder::capped`] turns true and the
    /// rest of the body is ignored.
    ///
    /// # Errors
    /// [`DecodeError`] when the data is corrupt. An error is reported once; afterwards the
    /// decoder ignores its input.
    pub fn push(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DecodeError> {
        self.push_with(input, limit, &mut |bytes| out.extend_from_slice(bytes))
    }

    /// As [`BodyDecoder::push`], handing decoded bytes to `sink` in pieces of at most a few KiB
    /// instead of collecting them, so that memory stays bounded whatever the compression ratio.
    ///
    /// # Errors
    /// [`DecodeError`] when the data is corrupt.
    pub fn push_with(
        &mut self,
        input: &[u8],
        limit: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), DecodeError> {
        if self.failed || self.capped || input.is_empty() {
            return Ok(());
        }
        self.seen_input = true;
        if self.work.is_empty() {
            self.work = vec![0; WORK_BUFFER].into_boxed_slice();
        }
        let mut out = Out {
            sink,
            produced: &mut self.produced,
            limit,
            capped: &mut self.capped,
        };
        let result = match &mut self.codec {
            Codec::Gzip(g) => g.push(input, &mut self.work, &mut out),
            Codec::Deflate(d) => d.push(input, &mut self.work, &mut out),
            Codec::Brotli(b) => b.push(input, &mut self.work, &mut out),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// The body ended: checks that the compressed stream ended too.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when the body stopped inside the compressed data. An empty
    /// body, a decoder that stopped at its limit and one that already failed are not errors.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        if self.failed || self.capped || !self.seen_input {
            return Ok(());
        }
        let complete = match &self.codec {
            Codec::Gzip(g) => g.complete(),
            Codec::Deflate(d) => d.ended,
            Codec::Brotli(b) => b.ended,
        };
        if complete {
            Ok(())
        } else {
            self.failed = true;
            Err(DecodeError::Truncated)
        }
    }

    /// Whether output reached the limit and decoding stopped there.
    pub fn capped(&self) -> bool {
        self.capped
    }

    /// Decoded bytes produced so far.
    pub fn decoded_len(&self) -> usize {
        self.produced
    }
}

/// Where decoded bytes go, under the limit.
struct Out<'a> {
    sink: &'a mut dyn FnMut(&[u8]),
    produced: &'a mut usize,
    limit: usize,
    capped: &'a mut bool,
}

impl Out<'_> {
    /// Emits what fits under the limit; false once the limit is reached.
    fn emit(&mut self, bytes: &[u8]) -> bool {
        if *self.capped {
            return false;
        }
        let room = self.limit.saturating_sub(*self.produced);
        let take = bytes.len().min(room);
        if let Some(part) = bytes.get(..take).filter(|p| !p.is_empty()) {
            (self.sink)(part);
        }
        *self.produced += take;
        // Output that exactly fills the limit is not cut: only output beyond it is.
        if take < bytes.len() {
            *self.capped = true;
            return false;
        }
        true
    }
}

/// Inflates as much of `input` as possible; hands output to `emit` (which returns false to
/// stop). Returns the input consumed and whether the DEFLATE stream ended.
fn inflate_some(
    state: &mut InflateState,
    input: &[u8],
    work: &mut [u8],
    emit: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<(usize, bool), DecodeError> {
    let mut consumed = 0;
    loop {
        let rest = input.get(consumed..).unwrap_or_default();
        let r = inflate(state, rest, work, MZFlush::None);
        consumed += r.bytes_consumed;
        let written = work.get(..r.bytes_written).unwrap_or_default();
        if !emit(written) {
            return Ok((consumed, false));
        }
        match r.status {
            Ok(MZStatus::StreamEnd) => return Ok((consumed, true)),
            Ok(_) if r.bytes_consumed == 0 && r.bytes_written == 0 => return Ok((consumed, false)),
            Ok(_) => {}
            // No progress without more input: wait for the next chunk.
            Err(MZError::Buf) => return Ok((consumed, false)),
            Err(_) => return Err(DecodeError::Corrupt),
        }
    }
}

/// CRC-32 (ISO-HDLC, as gzip uses it) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// gzip header flags (RFC 1952 §2.3.1).
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

/// Where the gzip member header parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderStep {
    /// The 10 fixed bytes: ID1 ID2 CM FLG MTIME(4) XFL OS.
    Fixed,
    /// XLEN, little-endian; `lo` once its first byte is in.
    ExtraLen { lo: Option<u8> },
    /// Skipping the extra field.
    Extra(usize),
    /// Skipping the zero-terminated file name.
    Name,
    /// Skipping the zero-terminated comment.
    Comment,
    /// Skipping the header CRC-16.
    HeaderCrc(u8),
    /// Header complete.
    Done,
}

/// Incremental gzip member header parser.
#[derive(Debug)]
struct GzHeader {
    fixed: [u8; 10],
    have: usize,
    flags: u8,
    step: HeaderStep,
}

impl GzHeader {
    fn new() -> Self {
        GzHeader {
            fixed: [0; 10],
            have: 0,
            flags: 0,
            step: HeaderStep::Fixed,
        }
    }

    /// The step after the optional field `after` (ordered FEXTRA, FNAME, FCOMMENT, FHCRC).
    fn next_step(&self, after: u8) -> HeaderStep {
        let order = [FEXTRA, FNAME, FCOMMENT, FHCRC];
        let start = order.iter().position(|&f| f == after).map_or(0, |i| i + 1);
        for &flag in order.iter().skip(start) {
            if self.flags & flag != 0 {
                return match flag {
                    FEXTRA => HeaderStep::ExtraLen { lo: None },
                    FNAME => HeaderStep::Name,
                    FCOMMENT => HeaderStep::Comment,
                    _ => HeaderStep::HeaderCrc(2),
                };
            }
        }
        HeaderStep::Done
    }

    /// Consumes header bytes from `input`; returns how many, and whether the header is done.
    fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), DecodeError> {
        let mut used = 0;
        for &b in input {
            if self.step == HeaderStep::Done {
                break;
            }
            used += 1;
            self.step = match self.step {
                HeaderStep::Fixed => {
                    if let Some(slot) = self.fixed.get_mut(self.have) {
                        *slot = b;
                    }
                    self.have += 1;
                    if self.have < self.fixed.len() {
                        HeaderStep::Fixed
                    } else {
                        let [id1, id2, cm, flags, ..] = self.fixed;
                        if id1 != 0x1f || id2 != 0x8b || cm != 8 || flags & FRESERVED != 0 {
                            return Err(DecodeError::Header);
                        }
                        self.flags = flags;
                        self.next_step(0)
                    }
                }
                HeaderStep::ExtraLen { lo: None } => HeaderStep::ExtraLen { lo: Some(b) },
                HeaderStep::ExtraLen { lo: Some(lo) } => {
                    match usize::from(u16::from_le_bytes([lo, b])) {
                        0 => self.next_step(FEXTRA),
                        n => HeaderStep::Extra(n),
                    }
                }
                HeaderStep::Extra(n) if n > 1 => HeaderStep::Extra(n - 1),
                HeaderStep::Extra(_) => self.next_step(FEXTRA),
                HeaderStep::Name if b == 0 => self.next_step(FNAME),
                HeaderStep::Comment if b == 0 => self.next_step(FCOMMENT),
                step @ (HeaderStep::Name | HeaderStep::Comment) => step,
                HeaderStep::HeaderCrc(n) if n > 1 => HeaderStep::HeaderCrc(n - 1),
                HeaderStep::HeaderCrc(_) => HeaderStep::Done,
                HeaderStep::Done => HeaderStep::Done,
            };
        }
        Ok((used, self.step == HeaderStep::Done))
    }
}

/// Where a gzip body is.
enum GzStage {
    Header(GzHeader),
    Body,
    Trailer {
        bytes: [u8; 8],
        have: usize,
    },
    /// After the last member, or trailing bytes that are not a member: ignored.
    Done,
}

/// A gzip body: one or more members, each a header, raw DEFLATE data and a CRC-32/ISIZE trailer.
struct Gzip {
    stage: GzStage,
    inflate: Box<InflateState>,
    crc: u32,
    size: u32,
    members: usize,
}

impl Gzip {
    fn new() -> Self {
        Gzip {
            stage: GzStage::Header(GzHeader::new()),
            inflate: InflateState::new_boxed(DataFormat::Raw),
            crc: 0,
            size: 0,
            members: 0,
        }
    }

    /// Complete when a member's trailer is in and no further member's data was started (the
    /// start of a header after it is trailing bytes like any others).
    fn complete(&self) -> bool {
        match &self.stage {
            GzStage::Done => true,
            GzStage::Header(_) => self.members > 0,
            GzStage::Body | GzStage::Trailer { .. } => false,
        }
    }

    fn push(
        &mut self,
        mut input: &[u8],
        work: &mut [u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        while !input.is_empty() {
            match &mut self.stage {
                GzStage::Header(header) => match header.feed(input) {
                    Ok((used, done)) => {
                        input = input.get(used..).unwrap_or_default();
                        if done {
                            self.inflate.reset(DataFormat::Raw);
                            self.crc = 0;
                            self.size = 0;
                            self.stage = GzStage::Body;
                        }
                    }
                    // Bytes after a complete member that are not another member: ignored, as
                    // browsers do.
                    Err(_) if self.members > 0 => self.stage = GzStage::Done,
                    Err(e) => return Err(e),
                },
                GzStage::Body => {
                    let (crc, size) = (&mut self.crc, &mut self.size);
                    let mut emit = |bytes: &[u8]| {
                        *crc = crc32_update(*crc, bytes);
                        // ISIZE is the length modulo 2^32.
                        *size = size.wrapping_add(bytes.len() as u32);
                        out.emit(bytes)
                    };
                    let (used, ended) = inflate_some(&mut self.inflate, input, work, &mut emit)?;
                    if *out.capped {
                        return Ok(());
                    }
                    input = input.get(used..).unwrap_or_default();
                    if ended {
                        self.stage = GzStage::Trailer {
                            bytes: [0; 8],
                            have: 0,
                        };
                    } else if used == 0 {
                        // Waiting for more input.
                        return Ok(());
                    }
                }
                GzStage::Trailer { bytes, have } => {
                    let want = bytes.len() - *have;
                    let take = want.min(input.len());
                    if let (Some(dst), Some(src)) =
                        (bytes.get_mut(*have..*have + take), input.get(..take))
                    {
                        dst.copy_from_slice(src);
                    }
                    *have += take;
                    input = input.get(take..).unwrap_or_default();
                    if *have == bytes.len() {
                        let [c0, c1, c2, c3, s0, s1, s2, s3] = *bytes;
                        if u32::from_le_bytes([c0, c1, c2, c3]) != self.crc
                            || u32::from_le_bytes([s0, s1, s2, s3]) != self.size
                        {
                            return Err(DecodeError::Checksum);
                        }
                        self.members += 1;
                        self.stage = GzStage::Header(GzHeader::new());
                    }
                }
                GzStage::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

/// A `deflate` body: zlib-wrapped as the spec says, or raw DEFLATE as some servers send it,
/// told apart by the first two bytes.
struct Deflate {
    inflate: Option<Box<InflateState>>,
    head: [u8; 2],
    have: usize,
    ended: bool,
}

impl Deflate {
    fn new() -> Self {
        Deflate {
            inflate: None,
            head: [0; 2],
            have: 0,
            ended: false,
        }
    }

    /// Whether two bytes open a zlib stream (RFC 1950 §2.2): DEFLATE method, a window of at
    /// most 32 KiB, a valid check and no preset dictionary.
    fn is_zlib_header(cmf: u8, flg: u8) -> bool {
        cmf & 0x0f == 8
            && cmf >> 4 <= 7
            && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
            && flg & 0x20 == 0
    }

    fn push(
        &mut self,
        mut input: &[u8],
        work: &mut [u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if self.ended {
            return Ok(());
        }
        if self.inflate.is_none() {
            let take = (self.head.len() - self.have).min(input.len());
            if let (Some(dst), Some(src)) = (
                self.head.get_mut(self.have..self.have + take),
                input.get(..take),
            ) {
                dst.copy_from_slice(src);
            }
            self.have += take;
            input = input.get(take..).unwrap_or_default();
            if self.have < self.head.len() {
                return Ok(());
            }
            let [cmf, flg] = self.head;
            let format = if Self::is_zlib_header(cmf, flg) {
                DataFormat::Zlib
            } else {
                DataFormat::Raw
            };
            let mut state = InflateState::new_boxed(format);
            let head = self.head;
            let mut emit = |bytes: &[u8]| out.emit(bytes);
            let (_, ended) = inflate_some(&mut state, &head, work, &mut emit)?;
            self.inflate = Some(state);
            self.ended = ended;
            if ended || *out.capped {
                return Ok(());
            }
        }
        let Some(state) = self.inflate.as_mut() else {
            return Ok(());
        };
        let mut emit = |bytes: &[u8]| out.emit(bytes);
        // Bytes after the end of the stream are ignored.
        let (_, ended) = inflate_some(state, input, work, &mut emit)?;
        self.ended = ended;
        Ok(())
    }
}

/// A `br` body.
struct Brotli {
    state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    ended: bool,
}

impl Brotli {
    fn new() -> Self {
        Brotli {
            // Strict: large-window streams (windows up to 1 GiB, RFC 7932 extension) are refused.
            state: BrotliState::new_strict(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ),
            ended: false,
        }
    }

    fn push(
        &mut self,
        mut input: &[u8],
        work: &mut [u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        while !self.ended {
            let mut available_in = input.len();
            let mut input_offset = 0;
            let mut available_out = work.len();
            let mut output_offset = 0;
            let mut total_out = 0;
            let result = BrotliDecompressStream(
                &mut available_in,
                &mut input_offset,
                input,
                &mut available_out,
                &mut output_offset,
                work,
                &mut total_out,
                &mut self.state,
            );
            input = input.get(input_offset..).unwrap_or_default();
            if !out.emit(work.get(..output_offset).unwrap_or_default()) {
                return Ok(());
            }
            match result {
                BrotliResult::ResultSuccess => self.ended = true,
                BrotliResult::NeedsMoreInput => return Ok(()),
                BrotliResult::NeedsMoreOutput if input_offset > 0 || output_offset > 0 => {}
                BrotliResult::NeedsMoreOutput | BrotliResult::ResultFailure => {
                    return Err(DecodeError::Corrupt)
                }
            }
        }
        // Bytes after the end of the stream are ignored.
        Ok(())
    }
}

#[cfg(test)]
mod tests;
