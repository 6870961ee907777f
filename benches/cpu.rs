//! CPU cost per body byte of one whole request, for callgrind.
//!
//! `cpu MODE [SIZE] [--granularity G] [--recv N] [--chunk N]`
//!
//! - `length`: `fota::session::run` against a `Content-Length` response.
//! - `chunked`: the same image with `Transfer-Encoding: chunked`.
//! - `memcpy`: the floor. The same image bytes go through the same mock
//!   hooks with the same read sizes, `recv` into a receive buffer and
//!   `write` from it into flash, and nothing else. Those two copies are what
//!   any client of the hook API must pay (the network hands bytes into the
//!   client's buffer, the flash hook takes them from it), so the difference
//!   to `length`/`chunked` is the library's own cost.
//!
//! SIZE: image bytes (default 4 MiB). G: flash write granularity, 0 or a
//! power of two (default 0). N for `--recv`: most bytes one `recv` hands
//! out (default 1460, one Ethernet TCP segment: what lwIP or a modem's
//! socket typically returns per call on a microcontroller). N for `--chunk`:
//! data bytes per chunk (default 4096: nginx's one-page proxy/gzip buffers;
//! Go and Node stream 32-64 KiB chunks, so 4 KiB is the costlier common case).
//!
//! Only `measured_region` is meant to be counted: run it under
//! `valgrind --tool=callgrind --toggle-collect='*measured_region*'`
//! (`scripts/bench-cpu.sh` does), so building the image and the response and
//! checking the result stay out of the figure. The result is checked after
//! the region: a wrong image or a failed request exits 1, so a broken bench
//! cannot report figures. Without a mode (as `cargo bench` runs it) every
//! mode runs once as a self-check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;
use std::process::ExitCode;

use fota::hooks::{Clock, Flash, Level, Received, Stream, System, Transport};
use fota::options::{Options, FOTA_RX_BUF};
use fota::result::Error;
use fota::session::{self, Workspace};
use fota::status::Status;

const DEFAULT_SIZE: usize = 4 << 20;
const DEFAULT_RECV: usize = 1460;
const DEFAULT_CHUNK: usize = 4096;
const URL: &str = "http://fw.example.com/app.bin";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Length,
    Chunked,
    Memcpy,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "length" => Some(Mode::Length),
            "chunked" => Some(Mode::Chunked),
            "memcpy" => Some(Mode::Memcpy),
            _ => None,
        }
    }
}

struct Params {
    size: usize,
    granularity: u32,
    recv: usize,
    chunk: usize,
}

/// The server side: hands out the prebuilt response, at most `segment`
/// bytes per `recv`, then closes. Requests are accepted and dropped.
struct MemNet<'a> {
    response: &'a [u8],
    pos: usize,
    segment: usize,
    connects: u32,
    sent: usize,
}

impl Transport for MemNet<'_> {
    fn connect(&mut self, _host: &str, _port: u16, _timeout_ms: u32) -> Result<(), Error> {
        self.connects += 1;
        self.pos = 0;
        Ok(())
    }

    fn close(&mut self) {}
}

impl Stream for MemNet<'_> {
    fn send(&mut self, data: &[u8], _timeout_ms: u32) -> Result<usize, Error> {
        self.sent += data.len();
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8], _timeout_ms: u32) -> Result<Received, Error> {
        let left = &self.response[self.pos..];
        if left.is_empty() {
            return Ok(Received::Closed);
        }
        let n = left.len().min(self.segment).min(buf.len());
        // The copy a socket's recv makes from its buffers into the caller's.
        buf[..n].copy_from_slice(&left[..n]);
        self.pos += n;
        Ok(Received::Data(n))
    }
}

/// The update area: a preallocated Vec, so the measured region allocates
/// nothing; each write copies its bytes in, as programming flash moves them.
struct MemFlash {
    mem: Vec<u8>,
    granularity: u32,
    written: usize,
    inits: u32,
    committed: bool,
}

impl Flash for MemFlash {
    fn granularity(&self) -> u32 {
        self.granularity
    }

    fn init(&mut self, image_len: u32) -> Result<(), Error> {
        assert!(image_len == 0 || image_len as usize == self.mem.len());
        self.inits += 1;
        self.written = 0;
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        let at = offset as usize;
        assert_eq!(at, self.written, "writes in order");
        let g = self.granularity as usize;
        assert!(g == 0 || at % g == 0, "aligned write");
        self.mem[at..at + data.len()].copy_from_slice(data);
        self.written = at + data.len();
        Ok(())
    }

    fn done(&mut self) -> Result<bool, Error> {
        Ok(true)
    }

    fn end(&mut self, commit: bool) -> Result<(), Error> {
        self.committed = commit;
        Ok(())
    }
}

/// Time stands still: nothing in memory ever waits.
struct StillClock;

impl Clock for StillClock {
    fn now_ms(&self) -> u32 {
        0
    }

    fn sleep_ms(&self, _ms: u32) {}
}

struct QuietSys {
    progress: u32,
}

impl System for QuietSys {
    fn log(&mut self, _level: Level, msg: &str) {
        black_box(msg);
    }

    fn progress(&mut self, written: u32, _total: u32) {
        self.progress = written;
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(0x5a);
        Ok(())
    }
}

/// Everything a run needs, built before the measured region.
struct Case<'a> {
    mode: Mode,
    net: MemNet<'a>,
    flash: MemFlash,
    sys: QuietSys,
    ws: Box<Workspace>,
    status: Status,
    opts: Options<'a>,
}

/// The only code callgrind counts (`--toggle-collect='*measured_region*'`).
#[inline(never)]
fn measured_region(case: &mut Case<'_>) -> Result<(), Error> {
    let case = black_box(case);
    match case.mode {
        Mode::Length | Mode::Chunked => session::run(
            &mut case.ws,
            &mut case.net,
            &mut case.flash,
            &StillClock,
            &mut case.sys,
            &case.status,
            &case.opts,
        ),
        Mode::Memcpy => floor(case),
    }
}

/// network -> receive buffer -> flash, through the same hooks, no parsing.
fn floor(case: &mut Case<'_>) -> Result<(), Error> {
    let mut rx = [0u8; FOTA_RX_BUF];
    case.net.connect("fw.example.com", 80, 0)?;
    case.flash.init(case.flash.mem.len() as u32)?;
    let mut offset = 0u32;
    while let Received::Data(n) = case.net.recv(&mut rx, 0)? {
        // black_box: the two copies must not be fused into one.
        case.flash.write(offset, black_box(&rx[..n]))?;
        offset += n as u32;
        case.sys.progress(offset, 0);
    }
    case.net.close();
    case.flash.end(true)
}

/// Pseudo-random bytes (xorshift64), so a misplaced byte cannot go unseen.
fn image(size: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The response a server would send: an nginx-like head, then the body.
fn response(mode: Mode, image: &[u8], chunk: usize) -> Vec<u8> {
    const HEAD: &str = "HTTP/1.1 200 OK\r\n\
        Server: nginx/1.22.1\r\n\
        Date: Mon, 23 Nov 2026 10:00:00 GMT\r\n\
        Content-Type: application/octet-stream\r\n";
    let mut out = HEAD.as_bytes().to_vec();
    match mode {
        Mode::Memcpy => return image.to_vec(),
        Mode::Length => {
            out.extend_from_slice(
                format!(
                    "Content-Length: {}\r\n\
                     Last-Modified: Mon, 23 Nov 2026 09:00:00 GMT\r\n\
                     Connection: keep-alive\r\n\
                     ETag: \"65621b50-{:x}\"\r\n\
                     Accept-Ranges: bytes\r\n\r\n",
                    image.len(),
                    image.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(image);
        }
        Mode::Chunked => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
            for part in image.chunks(chunk) {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    out
}

fn options() -> Options<'static> {
    Options {
        url: Some(URL),
        max_retries: 0,
        ..Options::default()
    }
}

/// Runs one mode; `Err` says what went wrong.
fn bench(mode: Mode, p: &Params) -> Result<(), String> {
    let image = image(p.size);
    let response = response(mode, &image, p.chunk);
    let mut case = Case {
        mode,
        net: MemNet {
            response: &response,
            pos: 0,
            segment: p.recv,
            connects: 0,
            sent: 0,
        },
        flash: MemFlash {
            // Filled, not just reserved: no page is first touched inside the region.
            mem: vec![0xFF; p.size],
            granularity: p.granularity,
            written: 0,
            inits: 0,
            committed: false,
        },
        sys: QuietSys { progress: 0 },
        ws: Box::new(Workspace::new()),
        status: Status::new(),
        opts: options(),
    };
    let result = measured_region(&mut case);
    let Case {
        net, flash, sys, ..
    } = case;
    if let Err(e) = result {
        return Err(format!("request failed: {e:?}"));
    }
    if net.connects != 1 || flash.inits != 1 || !flash.committed {
        return Err(format!(
            "expected one connection, one init and a commit: {} connects, {} inits, committed {}",
            net.connects, flash.inits, flash.committed
        ));
    }
    if mode != Mode::Memcpy && net.sent == 0 {
        return Err("no request was sent".into());
    }
    if flash.written != image.len() || sys.progress as usize != image.len() {
        return Err(format!(
            "{} of {} bytes written (progress {})",
            flash.written,
            image.len(),
            sys.progress
        ));
    }
    if flash.mem != image {
        let at = flash.mem.iter().zip(&image).position(|(a, b)| a != b);
        return Err(format!("flash differs from the image at byte {at:?}"));
    }
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cpu length|chunked|memcpy [SIZE] [--granularity G] [--recv N] [--chunk N]\n\
         (run it under valgrind --tool=callgrind --toggle-collect='*measured_region*')"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut mode = None;
    let mut p = Params {
        size: DEFAULT_SIZE,
        granularity: 0,
        recv: DEFAULT_RECV,
        chunk: DEFAULT_CHUNK,
    };
    let mut size_seen = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<usize>().ok());
        match arg.as_str() {
            // What `cargo bench` passes to a harness-less target.
            "--bench" => {}
            "--granularity" => match value().and_then(|g| u32::try_from(g).ok()) {
                Some(g) if g == 0 || g.is_power_of_two() => p.granularity = g,
                _ => return usage(),
            },
            "--recv" => match value() {
                Some(n) if n > 0 => p.recv = n,
                _ => return usage(),
            },
            "--chunk" => match value() {
                Some(n) if n > 0 => p.chunk = n,
                _ => return usage(),
            },
            a if mode.is_none() && !size_seen => match Mode::parse(a) {
                Some(m) => mode = Some(m),
                None => return usage(),
            },
            a if !size_seen => match a.parse::<usize>() {
                Ok(n) if n > 0 && u32::try_from(n).is_ok() => {
                    p.size = n;
                    size_seen = true;
                }
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    let modes = match mode {
        Some(m) => vec![m],
        None => vec![Mode::Length, Mode::Chunked, Mode::Memcpy],
    };
    for m in modes {
        match bench(m, &p) {
            Ok(()) => println!(
                "{m:?}: ok, {} bytes, granularity {}, recv {}, chunk {}",
                p.size, p.granularity, p.recv, p.chunk
            ),
            Err(e) => {
                eprintln!("{m:?}: FAILED: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
