//! Session tests over a scripted transport, a NOR-like RAM flash and a fake
//! clock shared by both.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

use super::*;
use crate::hooks::Received;
use crate::options::{FOTA_ABORT_SLICE_MS, FOTA_IDLE_POLL_MS};
use crate::url::{DeviceIdKind, DeviceParams};

/// Milliseconds, shared by the transport (which "waits") and the system.
type Time = Rc<Cell<u32>>;

/// How a scripted connection hands out its bytes.
#[derive(Clone, Debug)]
enum Split {
    /// As much as the caller's buffer takes.
    Whole,
    /// At most this many bytes per `recv`.
    Every(usize),
    /// Pseudo-random sizes from 1 to the bound, from this seed.
    Random(u64, usize),
}

/// What happens after the scripted bytes are out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Close,
    Reset,
    /// Nothing more arrives: every `recv` waits out its timeout.
    Stall,
}

#[derive(Clone, Debug)]
struct Conn {
    response: Vec<u8>,
    split: Split,
    after: After,
    /// Milliseconds that pass before each byte run (a slow server).
    delay_ms: u32,
}

fn conn(response: &[u8]) -> Conn {
    Conn {
        response: response.to_vec(),
        split: Split::Whole,
        after: After::Close,
        delay_ms: 0,
    }
}

struct ScriptNet {
    time: Time,
    conns: Vec<Conn>,
    refuse: bool,
    /// Refuse this many connects before accepting.
    refuse_first: usize,
    current: Option<(Conn, usize, u64)>,
    /// When a slow connection's next byte run is due.
    ready_at: Option<u32>,
    connects: Vec<(String, u16)>,
    requests: Vec<Vec<u8>>,
    closes: usize,
    /// A non-blocking socket: "nothing yet" at once, whatever the timeout.
    instant_idle: bool,
}

impl ScriptNet {
    fn new(time: &Time, conns: Vec<Conn>) -> Self {
        ScriptNet {
            time: time.clone(),
            conns,
            refuse: false,
            refuse_first: 0,
            current: None,
            ready_at: None,
            connects: Vec::new(),
            requests: Vec::new(),
            closes: 0,
            instant_idle: false,
        }
    }

    fn request_text(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.requests[i]).into_owned()
    }
}

impl Transport for ScriptNet {
    fn connect(&mut self, host: &str, port: u16, _timeout_ms: u32) -> Result<(), Error> {
        self.connects.push((host.into(), port));
        if self.refuse_first > 0 {
            self.refuse_first -= 1;
            return Err(Error::Connect);
        }
        if self.refuse || self.conns.is_empty() {
            return Err(Error::Connect);
        }
        let c = self.conns.remove(0);
        let seed = match c.split {
            Split::Random(seed, _) => seed,
            _ => 0,
        };
        self.current = Some((c, 0, seed));
        self.requests.push(Vec::new());
        Ok(())
    }

    fn close(&mut self) {
        self.closes += 1;
        self.current = None;
    }
}

impl Stream for ScriptNet {
    fn send(&mut self, data: &[u8], _timeout_ms: u32) -> Result<usize, Error> {
        // Partial sends: at most 7 bytes at a time.
        let n = data.len().min(7);
        self.requests
            .last_mut()
            .unwrap()
            .extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<Received, Error> {
        let (c, pos, seed) = self.current.as_mut().expect("recv before connect");
        let left = c.response.len() - *pos;
        if left == 0 {
            return match c.after {
                After::Close => Ok(Received::Closed),
                After::Reset => Err(Error::Disconnected),
                After::Stall => {
                    self.time.set(self.time.get().wrapping_add(timeout_ms));
                    Ok(Received::Idle)
                }
            };
        }
        if c.delay_ms > 0 {
            // The next run arrives `delay_ms` after the previous one.
            let now = self.time.get();
            let due = *self.ready_at.get_or_insert(now.wrapping_add(c.delay_ms));
            let wait = due.wrapping_sub(now);
            if self.instant_idle && wait > 0 && wait < u32::MAX / 2 {
                return Ok(Received::Idle);
            }
            if wait > timeout_ms && wait < u32::MAX / 2 {
                self.time.set(now.wrapping_add(timeout_ms));
                return Ok(Received::Idle);
            }
            self.time.set(now.max(due));
            self.ready_at = Some(self.time.get().wrapping_add(c.delay_ms));
        }
        let want = match c.split {
            Split::Whole => left,
            Split::Every(n) => n,
            Split::Random(_, bound) => {
                // xorshift64: repeatable split points.
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                1 + (*seed % bound as u64) as usize
            }
        };
        let n = want.min(left).min(buf.len());
        buf[..n].copy_from_slice(&c.response[*pos..*pos + n]);
        *pos += n;
        Ok(Received::Data(n))
    }
}

/// NOR-like flash: `init` erases to 0xFF, a write must hit erased bytes, in
/// order, aligned to the granularity; faults on demand.
struct RamFlash {
    mem: Vec<u8>,
    erased: bool,
    granularity: u32,
    next_offset: u32,
    inits: Vec<u32>,
    writes: Vec<(u32, usize)>,
    ends: Vec<bool>,
    fail_write_at: Option<usize>,
    busy_polls: u32,
    done_fails: bool,
    end_fails: bool,
    polls: u32,
    /// The platform gave a read hook.
    readable: bool,
    /// A cell that programs wrong: this bit of the image (byte offset, mask)
    /// reads back flipped.
    bad_bit: Option<(usize, u8)>,
    reads: usize,
}

impl RamFlash {
    fn new() -> Self {
        RamFlash {
            mem: Vec::new(),
            erased: false,
            granularity: 0,
            next_offset: 0,
            inits: Vec::new(),
            writes: Vec::new(),
            ends: Vec::new(),
            fail_write_at: None,
            busy_polls: 0,
            done_fails: false,
            end_fails: false,
            polls: 0,
            readable: false,
            bad_bit: None,
            reads: 0,
        }
    }

    fn image(&self) -> &[u8] {
        &self.mem[..self.next_offset as usize]
    }
}

impl Flash for RamFlash {
    fn granularity(&self) -> u32 {
        self.granularity
    }

    fn init(&mut self, image_len: u32) -> Result<(), Error> {
        assert!(
            self.ends.len() == self.inits.len(),
            "init while an image is open"
        );
        self.inits.push(image_len);
        self.mem = vec![0xFF; 2 << 20];
        self.erased = true;
        self.next_offset = 0;
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        assert!(self.erased, "write before init");
        assert_eq!(offset, self.next_offset, "writes in order, without gaps");
        if let Some(last) = self.writes.last() {
            if self.granularity > 0 {
                assert_eq!(
                    last.1 % self.granularity as usize,
                    0,
                    "only the last write may be short"
                );
            }
        }
        if self.granularity > 0 {
            assert_eq!(offset % self.granularity, 0, "aligned write");
        }
        assert!(!data.is_empty(), "empty write");
        self.writes.push((offset, data.len()));
        if self.fail_write_at == Some(self.writes.len()) {
            return Err(Error::Flash);
        }
        let range = offset as usize..offset as usize + data.len();
        assert!(
            self.mem[range.clone()].iter().all(|&b| b == 0xFF),
            "programming unerased bytes"
        );
        self.mem[range].copy_from_slice(data);
        if let Some((at, mask)) = self.bad_bit {
            if let Some(b) = self
                .mem
                .get_mut(at)
                .filter(|_| (offset as usize..offset as usize + data.len()).contains(&at))
            {
                *b ^= mask;
            }
        }
        self.next_offset += data.len() as u32;
        Ok(())
    }

    fn done(&mut self) -> Result<bool, Error> {
        self.polls += 1;
        if self.polls <= self.busy_polls {
            return Ok(false);
        }
        if self.done_fails {
            Err(Error::Flash)
        } else {
            Ok(true)
        }
    }

    fn can_read(&self) -> bool {
        self.readable
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        assert!(self.readable, "read without a read hook");
        assert_eq!(
            self.ends.len() + 1,
            self.inits.len(),
            "read of an open image"
        );
        self.reads += 1;
        let at = offset as usize;
        buf.copy_from_slice(&self.mem[at..at + buf.len()]);
        Ok(())
    }

    fn end(&mut self, commit: bool) -> Result<(), Error> {
        self.ends.push(commit);
        if self.end_fails {
            Err(Error::Flash)
        } else {
            Ok(())
        }
    }
}

struct FakeSys {
    time: Time,
    /// Milliseconds each clock read advances (0: a stuck clock).
    tick: u32,
    logs: Vec<(Level, String)>,
    /// Every sleep of the clock, shared with it.
    sleeps: Rc<RefCell<Vec<u32>>>,
    /// Seed of the random source; `None`: the platform has none.
    random: Option<u64>,
    progress: Vec<(u32, u32)>,
    /// Raise the abort flag at this progress call.
    abort_at: Option<usize>,
    status: Option<&'static Status>,
}

impl FakeSys {
    fn new(time: &Time) -> Self {
        FakeSys {
            time: time.clone(),
            tick: 1,
            logs: Vec::new(),
            sleeps: Rc::default(),
            random: Some(0x5A5A_5A5A),
            progress: Vec::new(),
            abort_at: None,
            status: None,
        }
    }
}

/// The shared fake clock; each read advances it by `tick` ms (0: stuck).
struct FakeClock {
    time: Time,
    tick: u32,
    sleeps: Rc<RefCell<Vec<u32>>>,
    unix_time: Option<u64>,
}

impl FakeClock {
    fn of(sys: &FakeSys) -> Self {
        FakeClock {
            time: sys.time.clone(),
            tick: sys.tick,
            sleeps: sys.sleeps.clone(),
            unix_time: None,
        }
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u32 {
        self.time.set(self.time.get().wrapping_add(self.tick));
        self.time.get()
    }

    fn sleep_ms(&self, ms: u32) {
        self.sleeps.borrow_mut().push(ms);
        self.time.set(self.time.get().wrapping_add(ms));
    }

    fn unix_time(&self) -> Option<u64> {
        self.unix_time
    }
}

impl System for FakeSys {
    fn log(&mut self, level: Level, msg: &str) {
        self.logs.push((level, msg.into()));
    }

    fn progress(&mut self, written: u32, total: u32) {
        self.progress.push((written, total));
        if self.abort_at == Some(self.progress.len()) {
            self.status.unwrap().request_abort();
        }
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let seed = self.random.as_mut().ok_or(Error::InvalidArg)?;
        for b in buf {
            // xorshift64: a repeatable source per seed.
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *b = *seed as u8;
        }
        Ok(())
    }
}

fn opts(url: &str) -> Options<'_> {
    Options {
        url: Some(url),
        max_retries: 0,
        retry_delay_ms: 100,
        ..Options::default()
    }
}

/// One request against `conns`, with the doubles returned for inspection.
struct Run {
    result: Result<(), Error>,
    net: ScriptNet,
    flash: RamFlash,
    sys: FakeSys,
    status: &'static Status,
}

#[track_caller]
fn run_with(
    o: &Options<'_>,
    conns: Vec<Conn>,
    setup: impl FnOnce(&mut ScriptNet, &mut RamFlash, &mut FakeSys),
) -> Run {
    let time: Time = Rc::new(Cell::new(1000));
    let mut net = ScriptNet::new(&time, conns);
    let mut flash = RamFlash::new();
    let mut sys = FakeSys::new(&time);
    // Each run owns its status (leaked: tests are short-lived).
    let status: &'static Status = Box::leak(Box::new(Status::new()));
    sys.status = Some(status);
    setup(&mut net, &mut flash, &mut sys);
    let mut ws = Box::new(Workspace::new());
    let clock = FakeClock::of(&sys);
    let result = super::run(&mut ws, &mut net, &mut flash, &clock, &mut sys, status, o);
    // Invariants of every request.
    assert_eq!(
        net.closes,
        net.requests.len(),
        "every connection closed once"
    );
    assert_eq!(
        flash.ends.len(),
        flash.inits.len(),
        "end exactly once after every init"
    );
    if result.is_ok() {
        let (last, earlier) = flash.ends.split_last().expect("committed");
        assert!(
            *last && earlier.iter().all(|&c| !c),
            "one commit, at the end"
        );
    } else {
        assert!(
            flash.ends.iter().all(|&c| !c) || flash.end_fails,
            "no commit on failure"
        );
    }
    if o.max_len > 0 {
        assert!(flash.next_offset <= o.max_len, "written past max_len");
    }
    assert_eq!(status.snapshot().state, State::Idle as u32);
    Run {
        result,
        net,
        flash,
        sys,
        status,
    }
}

#[track_caller]
fn run(o: &Options<'_>, conns: Vec<Conn>) -> Run {
    run_with(o, conns, |_, _, _| {})
}

fn image(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

fn response_200(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v1\"\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        // Alternate hex case and add an extension now and then.
        let size = if i % 2 == 0 {
            format!("{n:x}")
        } else {
            format!("{n:X};ext=\"a b\"")
        };
        r.extend_from_slice(size.as_bytes());
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(&rest[..n]);
        r.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    r.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    r
}

const URL: &str = "http://fw.example.com/img.bin";

// --- Success paths -------------------------------------------------------

#[test]
fn content_length_image_is_written_and_committed() {
    let img = image(10_000);
    let r = run(&opts(URL), vec![conn(&response_200(&img))]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.image(), &img[..]);
    assert_eq!(r.flash.inits, vec![10_000]);
    assert_eq!(r.net.connects, vec![("fw.example.com".into(), 80)]);
    let snap = r.status.snapshot();
    assert_eq!(
        (snap.written, snap.total, snap.http_status),
        (10_000, 10_000, 200)
    );
    assert_eq!(r.sys.progress.last(), Some(&(10_000, 10_000)));
}

#[test]
fn one_mebibyte_is_identical_for_every_way_of_splitting_it() {
    let img = image(1 << 20);
    let body = response_200(&img);
    for split in [
        Split::Every(1),
        Split::Random(7, 3000),
        Split::Every(64 * 1024),
    ] {
        let mut c = conn(&body);
        c.split = split.clone();
        // A clock that only moves when the transport waits: a million reads
        // must not be slowed down by the test's own clock.
        let r = run_with(&opts(URL), vec![c], |_, _, s| s.tick = 0);
        assert_eq!(r.result, Ok(()), "{split:?}");
        assert!(r.flash.image() == &img[..], "{split:?}");
    }
}

#[test]
fn chunked_image_with_extensions_and_trailers() {
    let img = image(70_000);
    for sizes in [&[1usize][..], &[4096, 10, 8191], &[70_000]] {
        let mut c = conn(&chunked(&img, sizes));
        c.split = Split::Random(3, 5000);
        let r = run(&opts(URL), vec![c]);
        assert_eq!(r.result, Ok(()), "{sizes:?}");
        assert!(r.flash.image() == &img[..]);
        assert_eq!(r.flash.inits, vec![0], "length unknown in advance");
    }
}

#[test]
fn http10_body_read_until_close() {
    let img = image(5000);
    let mut resp = b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP\r\n\r\n".to_vec();
    resp.extend_from_slice(&img);
    let r = run(&opts(URL), vec![conn(&resp)]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.image(), &img[..]);
}

#[test]
fn interim_responses_are_skipped() {
    let img = image(100);
    let mut resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n".to_vec();
    resp.extend_from_slice(&response_200(&img));
    let mut c = conn(&resp);
    c.split = Split::Every(5);
    let r = run(&opts(URL), vec![c]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.image(), &img[..]);
}

#[test]
fn whole_image_as_206_is_accepted_a_part_is_not() {
    let img = image(300);
    let mut whole =
        b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-299/300\r\nContent-Length: 300\r\n\r\n"
            .to_vec();
    whole.extend_from_slice(&img);
    assert_eq!(run(&opts(URL), vec![conn(&whole)]).result, Ok(()));
    let mut part =
        b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-299/600\r\nContent-Length: 300\r\n\r\n"
            .to_vec();
    part.extend_from_slice(&img);
    let r = run(&opts(URL), vec![conn(&part)]);
    assert_eq!(r.result, Err(Error::Response));
    assert!(r.flash.inits.is_empty());
}

#[test]
fn bytes_past_content_length_are_ignored() {
    let img = image(50);
    let mut resp = response_200(&img);
    resp.extend_from_slice(b"garbage after the body");
    let r = run(&opts(URL), vec![conn(&resp)]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.image(), &img[..]);
}

// --- Write granularity ----------------------------------------------------

#[test]
fn granularity_gives_whole_aligned_blocks_except_the_last() {
    let img = image(100_003);
    for g in [1u32, 256, 4096] {
        for body in [response_200(&img), chunked(&img, &[1000, 333])] {
            let mut c = conn(&body);
            c.split = Split::Random(u64::from(g), 2000);
            let r = run_with(&opts(URL), vec![c], |_, f, _| f.granularity = g);
            assert_eq!(r.result, Ok(()), "g={g}");
            assert!(r.flash.image() == &img[..]);
            let (last_off, last_len) = *r.flash.writes.last().unwrap();
            assert_eq!(last_off as usize + last_len, img.len());
        }
    }
}

#[test]
fn invalid_granularity_is_rejected_before_any_traffic() {
    for g in [3u32, 8192] {
        let r = run_with(&opts(URL), vec![], |_, f, _| f.granularity = g);
        assert_eq!(r.result, Err(Error::InvalidArg));
        assert!(r.net.connects.is_empty());
    }
}

// --- The request ------------------------------------------------------------

#[test]
fn request_head_carries_host_agent_headers_and_body() {
    let mut o = opts("http://[::1]:8080/fw/img.bin?x=%20y");
    o.method = "POST";
    o.headers = b"Authorization: Bearer t\r\nX-Dev: 1";
    o.body = b"{\"v\":1}";
    let r = run(&o, vec![conn(&response_200(b"x"))]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.net.connects, vec![("::1".into(), 8080)]);
    let req = r.net.request_text(0);
    let expected = concat!(
        "POST /fw/img.bin?x=%20y HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: fota/",
        env!("CARGO_PKG_VERSION"),
        "\r\n"
    );
    assert!(req.starts_with(expected), "{req}");
    assert!(req.contains("Content-Length: 7\r\n"));
    assert!(
        req.ends_with("\r\nAuthorization: Bearer t\r\nX-Dev: 1\r\n\r\n{\"v\":1}"),
        "{req}"
    );
}

#[test]
fn port_option_applies_only_when_the_url_has_none() {
    let mut o = opts("http://h/x");
    o.port = 8081;
    let r = run(&o, vec![conn(&response_200(b"x"))]);
    assert_eq!(r.net.connects[0].1, 8081);
    assert!(r.net.request_text(0).contains("Host: h:8081\r\n"));
    let mut o = opts("http://h:9000/x");
    o.port = 8081;
    let r = run(&o, vec![conn(&response_200(b"x"))]);
    assert_eq!(r.net.connects[0].1, 9000);
}

#[test]
fn header_injection_is_refused_before_connecting() {
    for bad in [
        &b"X: a\r\n\r\nGET / HTTP/1.1"[..],
        b"X: a\nY: b",
        b"X: a\rb",
        b"no colon",
        b"\r\n",
    ] {
        let mut o = opts(URL);
        o.headers = bad;
        let r = run(&o, vec![conn(&response_200(b"x"))]);
        assert_eq!(r.result, Err(Error::InvalidArg), "{bad:?}");
        assert!(r.net.connects.is_empty());
    }
}

#[test]
fn bad_method_is_refused_before_connecting_or_logging() {
    for bad in ["GE T", "", "GET\r\nX: y"] {
        let mut o = opts(URL);
        o.method = bad;
        let r = run(&o, vec![conn(&response_200(b"x"))]);
        assert_eq!(r.result, Err(Error::InvalidArg), "{bad:?}");
        assert!(r.net.connects.is_empty());
        assert!(r.sys.logs.iter().all(|(_, m)| !m.contains(['\r', '\n'])));
    }
}

#[test]
fn platform_url_is_composed_and_sent() {
    let mut o = opts(URL);
    o.url = None;
    o.params = DeviceParams {
        device_id: Some((DeviceIdKind::Imei, "C81234567830")),
        project_key: Some("b0wl key"),
        firmware_name: Some("fotademo_LuatOS-SoC_AIR601"),
        version: Some("1025.1.0"),
    };
    let r = run(&o, vec![conn(&response_200(b"x"))]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.net.connects, vec![("iot.openluat.com".into(), 80)]);
    assert!(r.net.request_text(0).starts_with(
        "GET /api/site/firmware_upgrade?imei=C81234567830&project_key=b0wl%20key&firmware_name=fotademo_LuatOS-SoC_AIR601&version=1025.1.0 HTTP/1.1\r\nHost: iot.openluat.com\r\n"
    ));
}

#[test]
fn platform_parameters_are_checked_without_traffic() {
    let mut o = opts(URL);
    o.url = None;
    o.params.project_key = Some("k");
    o.params.version = Some("1.2");
    let r = run(&o, vec![]);
    assert_eq!(r.result, Err(Error::PlatformParam));
    assert!(r.net.connects.is_empty());
    o.params.version = Some("1.2.3");
    o.params.project_key = None;
    assert_eq!(run(&o, vec![]).result, Err(Error::PlatformParam));
}

#[test]
fn device_parameters_stay_out_of_the_log_without_show_url() {
    let mut o = opts("http://h/x");
    o.params.device_id = Some((DeviceIdKind::Imei, "SECRET-IMEI"));
    o.show_url = false;
    let r = run(
        &o,
        vec![conn(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")],
    );
    assert!(r.sys.logs.iter().all(|(_, m)| !m.contains("SECRET-IMEI")));
    assert!(r.net.request_text(0).contains("imei=SECRET-IMEI"));
    o.show_url = true;
    let r = run(
        &o,
        vec![conn(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")],
    );
    assert!(r.sys.logs.iter().any(|(_, m)| m.contains("SECRET-IMEI")));
}

// --- Answers that are not an image ---------------------------------------

#[test]
fn status_300_and_above_is_no_update_and_never_touches_flash() {
    for status in ["304 Not Modified", "404 Not Found", "500 Oops", "302 Found"] {
        let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\nLocation: /x\r\n\r\nhello");
        let r = run(&opts(URL), vec![conn(resp.as_bytes())]);
        assert_eq!(r.result, Err(Error::NoUpdate), "{status}");
        assert!(r.flash.inits.is_empty());
    }
}

#[test]
fn platform_refusal_codes() {
    for (body, result, code) in [
        (r#"{"code":27,"msg":"\u5df2\u662f"}"#, Error::NoUpdate, 27),
        (r#"{"msg":"banned","code":40}"#, Error::Platform, 40),
        (r#"{"code":43}"#, Error::Platform, 43),
        ("not json", Error::NoUpdate, 0),
    ] {
        let chunked_resp = format!(
            "HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        let plain = format!(
            "HTTP/1.1 409 Conflict\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for resp in [plain, chunked_resp] {
            let mut c = conn(resp.as_bytes());
            c.split = Split::Every(3);
            let r = run(&opts(URL), vec![c]);
            assert_eq!(r.result, Err(result), "{body}");
            assert_eq!(r.status.snapshot().platform_code, code);
            assert!(r.flash.inits.is_empty());
        }
    }
}

#[test]
fn other_2xx_and_empty_bodies_are_bad_responses() {
    for resp in [
        &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ] {
        let r = run(&opts(URL), vec![conn(resp)]);
        assert_eq!(r.result, Err(Error::Response));
        assert!(r.flash.inits.is_empty());
    }
    for resp in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"HTTP/1.0 200 OK\r\n\r\n",
    ] {
        let r = run(&opts(URL), vec![conn(resp)]);
        assert_eq!(r.result, Err(Error::Response));
        assert_eq!(r.flash.ends, vec![false]);
    }
}

#[test]
fn malformed_heads_and_chunks_are_bad_responses() {
    let long_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(FOTA_RX_BUF));
    let r = run(&opts(URL), vec![conn(long_head.as_bytes())]);
    assert_eq!(r.result, Err(Error::Response));
    let r = run(&opts(URL), vec![conn(b"SSH-2.0-OpenSSH\r\n\r\n")]);
    assert_eq!(r.result, Err(Error::Response));
    let r = run(
        &opts(URL),
        vec![conn(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
        )],
    );
    assert_eq!(r.result, Err(Error::Response));
    assert_eq!(r.flash.ends, vec![false]);
    let r = run(
        &opts(URL),
        vec![conn(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        )],
    );
    assert_eq!(r.result, Err(Error::Response));
}

// --- Redirects ---------------------------------------------------------------

#[test]
fn redirects_are_followed_when_allowed() {
    let img = image(500);
    let mut o = opts("http://a.example/dir/start");
    o.max_redirects = 2;
    let r = run(
        &o,
        vec![
            conn(b"HTTP/1.1 302 Found\r\nLocation: http://b.example:8080/fw/one\r\nContent-Length: 0\r\n\r\n"),
            conn(b"HTTP/1.1 301 Moved\r\nLocation: two.bin\r\n\r\n"),
            conn(&response_200(&img)),
        ],
    );
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.image(), &img[..]);
    assert_eq!(r.net.connects[1], ("b.example".into(), 8080));
    assert!(r
        .net
        .request_text(2)
        .starts_with("GET /fw/two.bin HTTP/1.1\r\nHost: b.example:8080\r\n"));
}

#[test]
fn redirect_budget_spent_is_a_bad_response() {
    let mut o = opts(URL);
    o.max_redirects = 1;
    let hop = conn(b"HTTP/1.1 307 Again\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
    let r = run(&o, vec![hop.clone(), hop.clone(), hop]);
    assert_eq!(r.result, Err(Error::Response));
    assert_eq!(r.net.connects.len(), 2);
    let r = run(
        &o,
        vec![conn(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")],
    );
    assert_eq!(r.result, Err(Error::Response), "redirect without Location");
}

// --- Limits --------------------------------------------------------------------

#[test]
fn content_length_above_max_len_fails_before_flash() {
    let mut o = opts(URL);
    o.max_len = 1000;
    let r = run(&o, vec![conn(&response_200(&image(1001)))]);
    assert_eq!(r.result, Err(Error::TooLarge));
    assert!(r.flash.inits.is_empty());
    let r = run(
        &o,
        vec![conn(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        )],
    );
    assert_eq!(r.result, Err(Error::TooLarge));
    let r = run(&o, vec![conn(&response_200(&image(1000)))]);
    assert_eq!(r.result, Ok(()));
}

#[test]
fn growing_chunked_body_stops_at_max_len() {
    let mut o = opts(URL);
    o.max_len = 10_000;
    let r = run_with(
        &o,
        vec![conn(&chunked(&image(10_001), &[3000]))],
        |_, f, _| f.granularity = 256,
    );
    assert_eq!(r.result, Err(Error::TooLarge));
    assert_eq!(r.flash.ends, vec![false]);
    let img = image(10_000);
    let r = run(&o, vec![conn(&chunked(&img, &[3000]))]);
    assert_eq!(r.result, Ok(()));
}

// --- Network failures and time -----------------------------------------------

#[test]
fn refused_connection_is_connect_error() {
    let r = run_with(&opts(URL), vec![conn(b"")], |n, _, _| n.refuse = true);
    assert_eq!(r.result, Err(Error::Connect));
}

#[test]
fn bad_and_unsupported_urls() {
    for u in ["ftp://h/x", "http://", "http://h:99999/x", "http://h x/"] {
        let r = run(&opts(u), vec![conn(&response_200(b"x"))]);
        assert_eq!(r.result, Err(Error::Url), "{u}");
        assert!(r.net.connects.is_empty());
    }
}

#[test]
fn peer_closing_or_resetting_mid_body_is_disconnected() {
    let img = image(5000);
    for after in [After::Close, After::Reset] {
        let mut c = conn(&response_200(&img)[..3000]);
        c.after = after;
        let r = run(&opts(URL), vec![c]);
        assert_eq!(r.result, Err(Error::Disconnected), "{after:?}");
        assert_eq!(r.flash.ends, vec![false]);
    }
    let r = run(&opts(URL), vec![conn(b"HTTP/1.1 200 OK\r\nContent-")]);
    assert_eq!(r.result, Err(Error::Disconnected));
}

#[test]
fn stalled_server_hits_the_idle_timeout() {
    let mut c = conn(&response_200(&image(5000))[..2000]);
    c.after = After::Stall;
    let mut o = opts(URL);
    o.idle_timeout_ms = 2000;
    let r = run(&o, vec![c]);
    assert_eq!(r.result, Err(Error::Timeout));
    assert_eq!(r.flash.ends, vec![false]);
}

#[test]
fn trickling_server_hits_the_overall_deadline() {
    let mut c = conn(&response_200(&image(5000)));
    c.split = Split::Every(1);
    c.delay_ms = 1000;
    let mut o = opts(URL);
    o.timeout_ms = 60_000;
    let r = run(&o, vec![c]);
    assert_eq!(r.result, Err(Error::Timeout));
    let elapsed = r.net.time.get() - 1000;
    assert!((60_000..=62_000).contains(&elapsed), "{elapsed}");
}

#[test]
fn deadline_holds_with_a_stuck_clock() {
    let mut c = conn(b"HTTP/1.1 200 OK\r\n");
    c.after = After::Stall;
    let r = run_with(&opts(URL), vec![c], |_, _, s| s.tick = 0);
    assert_eq!(r.result, Err(Error::Timeout));
}

// --- Flash faults ------------------------------------------------------------------

#[test]
fn failing_write_discards_the_image() {
    let r = run_with(
        &opts(URL),
        vec![conn(&response_200(&image(5 * FOTA_RX_BUF)))],
        |_, f, _| {
            f.fail_write_at = Some(2);
        },
    );
    assert_eq!(r.result, Err(Error::Flash));
    assert_eq!(r.flash.ends, vec![false]);
}

#[test]
fn done_is_polled_while_busy() {
    let img = image(100);
    let r = run_with(&opts(URL), vec![conn(&response_200(&img))], |_, f, _| {
        f.busy_polls = 5
    });
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.polls, 6);
    let r = run_with(&opts(URL), vec![conn(&response_200(&img))], |_, f, _| {
        f.busy_polls = 2;
        f.done_fails = true;
    });
    assert_eq!(r.result, Err(Error::Flash));
    assert_eq!(r.flash.ends, vec![false]);
}

#[test]
fn done_busy_forever_hits_the_deadline() {
    let mut o = opts(URL);
    o.timeout_ms = 5000;
    let r = run_with(&o, vec![conn(&response_200(b"abc"))], |_, f, _| {
        f.busy_polls = u32::MAX
    });
    assert_eq!(r.result, Err(Error::Timeout));
    assert_eq!(r.flash.ends, vec![false]);
}

#[test]
fn failing_commit_is_a_flash_error_and_end_is_not_repeated() {
    let r = run_with(&opts(URL), vec![conn(&response_200(b"abc"))], |_, f, _| {
        f.end_fails = true
    });
    assert_eq!(r.result, Err(Error::Flash));
    assert_eq!(r.flash.ends, vec![true]);
}

// --- Abort ---------------------------------------------------------------------------

#[test]
fn abort_during_download_discards_the_image() {
    let mut c = conn(&response_200(&image(50_000)));
    c.split = Split::Every(1000);
    let r = run_with(&opts(URL), vec![c], |_, _, s| s.abort_at = Some(3));
    assert_eq!(r.result, Err(Error::Aborted));
    assert_eq!(r.flash.ends, vec![false]);
    assert_eq!(r.sys.progress.len(), 3);
}

#[test]
fn abort_with_nothing_running_does_not_affect_the_next_request() {
    let status = Status::new();
    status.request_abort();
    assert!(!status.aborted());
}

// --- Resume and retries ------------------------------------------------------

fn response_206(img: &[u8], from: usize, total: usize, etag: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{total}\r\nContent-Length: {}\r\nETag: {etag}\r\n\r\n",
        img.len() - 1,
        img.len() - from
    )
    .into_bytes();
    r.extend_from_slice(&img[from..]);
    r
}

/// The first `body_bytes` of a 200 response carrying `img`, then a drop.
fn dropped_200(img: &[u8], body_bytes: usize, after: After) -> Conn {
    let full = response_200(img);
    let head = full.len() - img.len();
    let mut c = conn(&full[..head + body_bytes]);
    c.after = after;
    c
}

fn retrying(max_retries: u32) -> Options<'static> {
    let mut o = opts(URL);
    o.max_retries = max_retries;
    o
}

#[test]
fn dropped_download_resumes_with_range_and_if_range() {
    let img = image(100_000);
    for after in [After::Close, After::Reset, After::Stall] {
        let r = run(
            &retrying(3),
            vec![
                dropped_200(&img, 60_000, after),
                conn(&response_206(&img, 60_000, img.len(), "\"v1\"")),
            ],
        );
        assert_eq!(r.result, Ok(()), "{after:?}");
        assert!(r.flash.image() == &img[..]);
        assert_eq!(r.flash.inits, vec![100_000], "one image, continued");
        let second = r.net.request_text(1);
        assert!(
            second.contains("\r\nRange: bytes=60000-\r\nIf-Range: \"v1\"\r\n"),
            "{second}"
        );
        assert_eq!(r.status.snapshot().retries, 1);
    }
}

#[test]
fn continuation_that_does_not_match_restarts_from_zero() {
    let img = image(50_000);
    let mut other = img.clone();
    other[0] ^= 1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "wrong start",
            response_206(&img, 20_000, img.len(), "\"v1\""),
        ),
        ("wrong total", {
            let mut r = response_206(&img, 30_000, img.len(), "\"v1\"");
            let text = String::from_utf8_lossy(&r[..100]).replace("/50000", "/50001");
            r.splice(..100, text.into_bytes());
            r
        }),
        (
            "changed etag",
            response_206(&img, 30_000, img.len(), "\"v2\""),
        ),
        (
            "416",
            b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
    ];
    for (name, reply) in cases {
        let r = run(
            &retrying(3),
            vec![
                dropped_200(&img, 30_000, After::Close),
                conn(&reply),
                conn(&response_200(&other)),
            ],
        );
        assert_eq!(r.result, Ok(()), "{name}");
        assert!(
            r.flash.image() == &other[..],
            "{name}: the new image, from byte 0"
        );
        assert_eq!(r.flash.inits, vec![50_000, 50_000], "{name}");
        assert_eq!(r.flash.ends, vec![false, true], "{name}");
        assert!(!r.net.request_text(2).contains("Range:"), "{name}");
    }
}

#[test]
fn full_200_to_a_range_request_replaces_the_partial_image() {
    let img = image(50_000);
    let r = run(
        &retrying(1),
        vec![
            dropped_200(&img, 30_000, After::Close),
            conn(&response_200(&img)),
        ],
    );
    assert_eq!(r.result, Ok(()));
    assert!(r.flash.image() == &img[..]);
    assert_eq!(r.flash.inits, vec![50_000, 50_000]);
    assert_eq!(r.flash.ends, vec![false, true]);
    assert!(r.net.request_text(1).contains("Range: bytes=30000-"));
}

#[test]
fn chunked_download_restarts_from_zero_after_a_drop() {
    let img = image(20_000);
    let full = chunked(&img, &[1000]);
    let mut first = conn(&full[..9000]);
    first.after = After::Reset;
    let r = run(&retrying(1), vec![first, conn(&full)]);
    assert_eq!(r.result, Ok(()));
    assert!(r.flash.image() == &img[..]);
    assert!(!r.net.request_text(1).contains("Range:"));
    assert_eq!(r.flash.ends, vec![false, true]);
}

/// A 206 continuation without Content-Length (chunked, or ended by the
/// close) that carries more than its Content-Range announced: the bytes past
/// the announced total never reach the flash (found by the session fuzzer).
#[test]
fn continuation_is_never_written_past_its_total() {
    let img = image(50_000);
    let head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 30000-49999/50000\r\nETag: \"v1\"\r\n";
    let mut body = img[30_000..].to_vec();
    body.extend_from_slice(&[0xAB; 700]);
    let mut until_close = format!("{head}Connection: close\r\n\r\n").into_bytes();
    until_close.extend_from_slice(&body);
    let mut in_chunks = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    let framed = chunked(&body, &[4096]);
    let chunks_start = framed.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    in_chunks.extend_from_slice(&framed[chunks_start..]);
    for (name, reply) in [("until close", until_close), ("chunked", in_chunks)] {
        let r = run(
            &retrying(1),
            vec![dropped_200(&img, 30_000, After::Close), conn(&reply)],
        );
        assert_eq!(r.result, Err(Error::Response), "{name}");
        assert_eq!(r.flash.ends, vec![false], "{name}");
        let end = r.flash.writes.iter().map(|&(o, n)| o as usize + n).max();
        assert!(end <= Some(50_000), "{name}: wrote up to {end:?}");
    }
}

#[test]
fn a_weak_etag_cannot_prove_a_continuation() {
    // A weak ETag may not be sent in If-Range (RFC 9110 13.1.5), and equal
    // weak ETags do not promise equal bytes: the image starts again.
    let img = image(10_000);
    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nETag: W/\"w1\"\r\n\r\n".to_vec();
    let mut first = full.clone();
    first.extend_from_slice(&img[..4000]);
    let mut again = full.clone();
    again.extend_from_slice(&img);
    let r = run(&retrying(1), vec![conn(&first), conn(&again)]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.image(), &img[..]);
    let second = r.net.request_text(1);
    assert!(!second.contains("Range"), "{second}");
}

#[test]
fn resume_offset_is_a_whole_number_of_blocks() {
    let img = image(40_000);
    let r = run_with(
        &retrying(1),
        vec![
            dropped_200(&img, 10_000, After::Close),
            conn(&response_206(&img, 9_984, img.len(), "\"v1\"")),
        ],
        |_, f, _| f.granularity = 256,
    );
    assert_eq!(r.result, Ok(()));
    assert!(
        r.net.request_text(1).contains("Range: bytes=9984-"),
        "39 whole pages of 256"
    );
    assert!(r.flash.image() == &img[..]);
}

#[test]
fn failures_before_the_body_are_retried() {
    let img = image(1000);
    let r = run_with(&retrying(2), vec![conn(&response_200(&img))], |n, _, _| {
        n.refuse_first = 2
    });
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.net.connects.len(), 3);
    let r = run(
        &retrying(1),
        vec![
            conn(b"HTTP/1.1 200 OK\r\nContent-Le"),
            conn(&response_200(&img)),
        ],
    );
    assert_eq!(r.result, Ok(()));
    assert!(r.flash.inits.len() == 1 && !r.net.request_text(1).contains("Range:"));
}

#[test]
fn spent_budget_gives_the_last_error() {
    let img = image(10_000);
    let drops: Vec<Conn> = (0..4)
        .map(|_| dropped_200(&img, 100, After::Close))
        .collect();
    let r = run(&retrying(3), drops);
    assert_eq!(r.result, Err(Error::Disconnected));
    assert_eq!(r.net.connects.len(), 4);
    assert_eq!(r.status.snapshot().retries, 3);
    let r = run_with(&retrying(2), vec![], |n, _, _| n.refuse = true);
    assert_eq!(r.result, Err(Error::Connect));
    assert_eq!(r.net.connects.len(), 3);
}

#[test]
fn errors_a_new_connection_cannot_cure_are_not_retried() {
    let r = run(
        &retrying(5),
        vec![conn(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")],
    );
    assert_eq!(r.result, Err(Error::NoUpdate));
    let r = run(&retrying(5), vec![conn(b"garbage\r\n\r\n")]);
    assert_eq!(r.result, Err(Error::Response));
    assert_eq!(r.net.connects.len(), 1);
}

/// The pauses between connects: the sleeps of each wait added up.
fn pauses(r: &Run) -> Vec<u32> {
    let logs: Vec<u32> = r
        .sys
        .logs
        .iter()
        .filter_map(|(_, l)| {
            l.strip_prefix("retry ")?
                .split(" in ")
                .nth(1)?
                .strip_suffix(" ms")?
                .parse()
                .ok()
        })
        .collect();
    let slept: u32 = r.sys.sleeps.borrow().iter().sum();
    assert_eq!(slept, logs.iter().sum::<u32>(), "every pause is slept");
    assert!(r
        .sys
        .sleeps
        .borrow()
        .iter()
        .all(|&s| s <= FOTA_ABORT_SLICE_MS));
    logs
}

#[test]
fn backoff_is_full_jitter_under_a_doubling_ceiling() {
    for random in [Some(7), Some(99), None] {
        let mut o = retrying(7);
        o.retry_delay_ms = 5000;
        o.timeout_ms = 1_000_000;
        let r = run_with(&o, vec![], |n, _, s| {
            n.refuse = true;
            s.random = random;
        });
        assert_eq!(r.result, Err(Error::Connect));
        let pauses = pauses(&r);
        let ceilings = [5000, 10_000, 20_000, 30_000, 30_000, 30_000, 30_000];
        assert_eq!(pauses.len(), ceilings.len());
        for (pause, ceiling) in pauses.iter().zip(ceilings) {
            assert!(*pause <= ceiling, "{pause} > {ceiling}");
        }
        let distinct: std::collections::HashSet<_> = pauses.iter().collect();
        assert!(
            distinct.len() > 3,
            "random pauses, not a fixed series: {pauses:?}"
        );
    }
}

/// 10,000 devices lose the same server at the same moment and keep retrying
/// while it is down. With fixed doubling every device would retry in the
/// same millisecond forever; with full jitter the retries spread out.
#[test]
fn a_fleet_does_not_retry_in_lockstep() {
    const DEVICES: u64 = 10_000;
    const HORIZON_MS: u32 = 300_000;
    let mut per_second = vec![0u32; (HORIZON_MS / 1000) as usize];
    let mut first_round = vec![0u32; 10];
    let mut o = retrying(40);
    o.retry_delay_ms = 1000;
    o.timeout_ms = HORIZON_MS;
    for device in 0..DEVICES {
        // The fallback generator is seeded from the device id (an IMEI here).
        let imei = format!("86{:013}", device * 7919);
        let mut o = o;
        o.params.device_id = Some((DeviceIdKind::Imei, &imei));
        let r = run_with(&o, vec![], |n, _, s| {
            n.refuse = true;
            // Half the fleet has a random source; the rest seeds from its id and clock.
            s.random = (device % 2 == 0).then_some(device * 2_654_435_761 + 1);
            s.tick = 0;
        });
        // Connect times: the clock moves only in sleeps (tick 0).
        let mut t = 0u32;
        let ps = pauses(&r);
        for (i, p) in ps.iter().enumerate() {
            t += p;
            if i == 0 {
                first_round[(t / 100).min(9) as usize] += 1;
            }
            if let Some(slot) = per_second.get_mut((t / 1000) as usize) {
                *slot += 1;
            }
        }
    }
    // The first retries are spread over the whole first window (1 s) ...
    let mean = DEVICES as f64 / 10.0;
    assert!(
        first_round.iter().all(|&n| (n as f64) < 2.0 * mean),
        "{first_round:?}"
    );
    // ... and once the ceiling is reached (after about 1+2+4+8+16 s) the
    // rate in any 1 s window stays within 2x the mean rate.
    let steady = &per_second[60..];
    let mean = steady.iter().sum::<u32>() as f64 / steady.len() as f64;
    let peak = *steady.iter().max().unwrap() as f64;
    assert!(peak <= 2.0 * mean, "peak {peak} vs mean {mean}");
}

#[test]
fn retry_after_on_503_and_429_is_honoured_within_the_budget() {
    let body = image(3000);
    let busy = |after: &str| {
        conn(
            format!("HTTP/1.1 503 Busy\r\nRetry-After: {after}\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
    };
    let mut o = retrying(3);
    o.timeout_ms = 100_000;
    let r = run(
        &o,
        vec![
            busy("7"),
            conn(b"HTTP/1.1 429 Slow down\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n"),
            conn(&response_200(&body)),
        ],
    );
    assert_eq!(r.result, Ok(()));
    assert_eq!(pauses(&r), vec![7000, 2000]);
    assert_eq!(r.flash.image(), &body[..]);
    // A pause past the deadline ends the request with the refusal.
    let mut o3 = retrying(3);
    o3.timeout_ms = 5000;
    let r = run(&o3, vec![busy("60")]);
    assert_eq!(r.result, Err(Error::NoUpdate));
    assert_eq!(r.net.connects.len(), 1);
    // Out of retries: the refusal, not "no update" spelled differently.
    let r = run(&retrying(1), vec![busy("1"), busy("1")]);
    assert_eq!(r.result, Err(Error::NoUpdate));
    assert_eq!(r.net.connects.len(), 2);
}

#[test]
fn backoff_that_would_pass_the_deadline_ends_the_request_with_the_last_failure() {
    let mut o = retrying(10);
    o.retry_delay_ms = 4000;
    o.timeout_ms = 10_000;
    let r = run_with(&o, vec![], |n, _, _| n.refuse = true);
    assert_eq!(
        r.result,
        Err(Error::Connect),
        "the last failure, not a timeout"
    );
    // Pauses of up to 4 s, 8 s, 16 s ...: one that would pass the 10 s
    // deadline is not begun.
    assert!(r.net.connects.len() >= 2);
    assert!(r.net.time.get() - 1000 < 10_000);
}

#[test]
fn abort_during_backoff() {
    let mut o = retrying(3);
    o.retry_delay_ms = 10_000;
    let status: &'static Status = Box::leak(Box::new(Status::new()));
    let time: Time = Rc::new(Cell::new(0));
    let mut net = ScriptNet::new(&time, vec![]);
    net.refuse = true;
    let mut flash = RamFlash::new();
    struct AbortingClock(FakeClock, &'static Status);
    impl Clock for AbortingClock {
        fn now_ms(&self) -> u32 {
            self.0.now_ms()
        }
        fn sleep_ms(&self, ms: u32) {
            self.0.sleep_ms(ms);
            if self.0.sleeps.borrow().len() == 3 {
                self.1.request_abort();
            }
        }
    }
    let mut sys = FakeSys::new(&time);
    sys.random = None;
    let mut ws = Box::new(Workspace::new());
    let clock = AbortingClock(FakeClock::of(&sys), status);
    let result = super::run(&mut ws, &mut net, &mut flash, &clock, &mut sys, status, &o);
    assert_eq!(result, Err(Error::Aborted));
    assert_eq!(sys.sleeps.borrow().len(), 3, "abort seen within one slice");
}

// ---- hardening regressions (issue 12) ----

/// A 206 carrying `img[from..]` with the given validator header line (or none).
fn partial(img: &[u8], from: usize, validator: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\n{}\r\n",
        img.len() - 1,
        img.len(),
        img.len() - from,
        validator.map(|v| format!("ETag: {v}\r\n")).unwrap_or_default(),
    )
    .into_bytes();
    r.extend_from_slice(&img[from..]);
    r
}

fn whole(img: &[u8], validator: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
        img.len(),
        validator
            .map(|v| format!("ETag: {v}\r\n"))
            .unwrap_or_default(),
    )
    .into_bytes();
    r.extend_from_slice(img);
    r
}

#[test]
fn a_long_etag_is_kept_and_a_changed_one_is_never_spliced() {
    let a = image(200_000);
    let b: Vec<u8> = a.iter().map(|x| x ^ 0xA5).collect();
    let etag_a = format!("\"{}\"", "a".repeat(128));
    let etag_b = format!("\"{}\"", "b".repeat(128));
    let head = whole(&a, Some(&etag_a)).len() - a.len();
    let mut first = conn(&whole(&a, Some(&etag_a))[..head + 102_400]);
    first.after = After::Reset;
    let r = run(
        &retrying(3),
        vec![
            first,
            conn(&partial(&b, 102_400, Some(&etag_b))),
            conn(&whole(&b, Some(&etag_b))),
        ],
    );
    assert_eq!(r.result, Ok(()));
    assert!(
        r.flash.image() == &b[..],
        "the new image whole, never A + B"
    );
    assert!(r
        .net
        .request_text(1)
        .contains(&format!("If-Range: {etag_a}\r\n")));
    // A 130-byte SHA-512 hex ETag resumes.
    let etag = format!("\"{}\"", "f".repeat(128));
    let head = whole(&a, Some(&etag)).len() - a.len();
    let mut first = conn(&whole(&a, Some(&etag))[..head + 50_000]);
    first.after = After::Close;
    let r = run(
        &retrying(3),
        vec![first, conn(&partial(&a, 50_000, Some(&etag)))],
    );
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.inits.len(), 1, "continued, not restarted");
    assert!(r.flash.image() == &a[..]);
}

#[test]
fn a_continuation_must_prove_its_identity() {
    let a = image(60_000);
    let b: Vec<u8> = a.iter().map(|x| x ^ 0x3C).collect();
    let too_long = format!("\"{}\"", "z".repeat(300));
    // (validator of the first response, validator of the 206)
    let cases: [(Option<&str>, Option<&str>); 4] = [
        (Some("\"v1\""), None),
        (None, Some("\"v1\"")),
        (None, None),
        (Some(&too_long), Some(&too_long)),
    ];
    for (old, new) in cases {
        let head = whole(&a, old).len() - a.len();
        let mut first = conn(&whole(&a, old)[..head + 20_000]);
        first.after = After::Close;
        let provable = old == Some("\"v1\"");
        let mut conns = vec![
            first,
            conn(&partial(&b, 20_000, new)),
            conn(&whole(&b, new)),
        ];
        if !provable {
            // No Range is asked for: a server answers with the whole image.
            conns.remove(1);
        }
        let r = run(&retrying(3), conns);
        assert_eq!(r.result, Ok(()), "{old:?} {new:?}");
        assert!(
            r.flash.image() == &b[..],
            "{old:?} {new:?}: restarted from 0, never spliced"
        );
        if old.is_none() || old == Some(too_long.as_str()) {
            // Nothing can prove a continuation: no Range is asked for at all.
            assert!(!r.net.request_text(1).contains("Range:"), "{old:?}");
        }
    }
}

#[test]
fn early_would_block_is_charged_by_the_clock_not_as_a_whole_slice() {
    // A non-blocking socket: every recv says "nothing" at once, and the
    // clock moves 1 ms per read; the server answers after 5 s of silence.
    let img = image(1000);
    let mut c = conn(&response_200(&img));
    c.delay_ms = 5_000;
    let mut o = opts(URL);
    o.idle_timeout_ms = 30_000;
    let r = run_with(&o, vec![c], |n, _, _| n.instant_idle = true);
    assert_eq!(
        r.result,
        Ok(()),
        "5 s of silence is within a 30 s idle timeout"
    );
    assert!(r.flash.image() == &img[..]);
    // The task pauses between polls instead of spinning.
    assert!(r
        .sys
        .sleeps
        .borrow()
        .iter()
        .all(|&s| s <= FOTA_IDLE_POLL_MS));
    // And a real stall still ends in the idle timeout, on the clock.
    let mut c = conn(&response_200(&img));
    c.delay_ms = 60_000;
    let r = run_with(&o, vec![c], |n, _, _| n.instant_idle = true);
    assert_eq!(r.result, Err(Error::Timeout));
    let elapsed = r.net.time.get() - 1000;
    assert!((30_000..31_000).contains(&elapsed), "{elapsed}");
}

#[test]
fn the_port_option_is_not_carried_into_a_redirect() {
    let img = image(100);
    let mut o = opts("http://first/x");
    o.port = 8080;
    o.max_redirects = 2;
    let r = run(
        &o,
        vec![
            conn(
                b"HTTP/1.1 302 Found\r\nLocation: http://other-host/y\r\nContent-Length: 0\r\n\r\n",
            ),
            conn(&response_200(&img)),
        ],
    );
    assert_eq!(r.result, Ok(()));
    assert_eq!(
        r.net.connects,
        vec![("first".into(), 8080), ("other-host".into(), 80)]
    );
}

#[test]
fn redirects_to_other_schemes_and_out_of_budget_are_errors() {
    for location in ["ftp://host/x", "file:///etc/passwd"] {
        let mut o = opts("http://a/dir/fw");
        o.max_redirects = 3;
        let reply =
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
        let r = run(
            &o,
            vec![conn(reply.as_bytes()), conn(&response_200(&image(10)))],
        );
        assert_eq!(r.result, Err(Error::Url), "{location}");
        assert_eq!(
            r.net.connects.len(),
            1,
            "nothing requested from the first server again"
        );
    }
    let mut o = opts("http://a/dir/fw");
    o.max_redirects = 1;
    let hop = conn(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n");
    let r = run(&o, vec![hop.clone(), hop]);
    assert_eq!(
        r.result,
        Err(Error::Response),
        "a spent budget is not \"no update\""
    );
}

#[test]
fn a_refusal_cut_short_by_the_idle_timeout_still_gives_its_code() {
    let mut c = conn(b"HTTP/1.1 400 Bad\r\nContent-Type: application/json\r\n\r\n{\"code\":3}");
    c.after = After::Stall;
    let mut o = opts(URL);
    o.idle_timeout_ms = 2000;
    let r = run(&o, vec![c]);
    assert_eq!(r.result, Err(Error::Platform));
    assert_eq!(r.status.snapshot().platform_code, 3);
}

#[test]
fn any_length_past_the_update_area_is_too_large() {
    for length in [
        "4294967296",
        "18446744073709551616",
        "99999999999999999999999999",
    ] {
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nabc");
        let r = run(&opts(URL), vec![conn(reply.as_bytes())]);
        assert_eq!(r.result, Err(Error::TooLarge), "{length}");
        assert!(r.flash.inits.is_empty());
    }
}

// ---- verified images (issue 13) ----

#[cfg(feature = "signed-images")]
mod signed;

mod resume;

use crate::verify::Reason;
use sha2::{Digest, Sha256};

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[track_caller]
fn refused(r: &Run, reason: Reason, what: &str) {
    assert_eq!(r.result, Err(Error::Verify), "{what}");
    assert_eq!(r.status.snapshot().verify_reason, reason as u32, "{what}");
    assert!(
        r.flash.ends.iter().all(|&c| !c),
        "{what}: nothing committed"
    );
    assert!(
        r.sys
            .logs
            .iter()
            .any(|(_, l)| l.starts_with("image refused: ")),
        "{what}"
    );
}

#[test]
fn expected_sha256_and_length() {
    let img = image(30_000);
    let digest: [u8; 32] = Sha256::digest(&img).into();
    let mut o = retrying(0);
    o.image_sha256 = Some(&digest);
    o.image_len = 30_000;
    assert_eq!(run(&o, vec![conn(&response_200(&img))]).result, Ok(()));
    assert_eq!(run(&o, vec![conn(&chunked(&img, &[999]))]).result, Ok(()));
    let mut other = img.clone();
    other[29_999] ^= 1;
    refused(
        &run(&o, vec![conn(&response_200(&other))]),
        Reason::Sha256,
        "one flipped byte",
    );
    let r = run(&o, vec![conn(&response_200(&img[..29_000]))]);
    refused(&r, Reason::Length, "announced length differs");
    assert!(r.flash.inits.is_empty(), "refused before init");
    let longer = [&img[..], b"x"].concat();
    refused(
        &run(&o, vec![conn(&chunked(&longer, &[4096]))]),
        Reason::Length,
        "chunked, longer",
    );
}

#[test]
fn repr_digest_is_checked_and_survives_a_resume() {
    let img = image(40_000);
    let b64 = base64(&Sha256::digest(&img));
    let with = |head_extra: &str, body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v1\"\r\n{head_extra}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let good = format!("Repr-Digest: sha-256=:{b64}:\r\n");
    assert_eq!(
        run(&opts(URL), vec![conn(&with(&good, &img))]).result,
        Ok(())
    );
    let mut other = img.clone();
    other[5] ^= 1;
    refused(
        &run(&opts(URL), vec![conn(&with(&good, &other))]),
        Reason::ReprDigest,
        "wrong body",
    );
    let r = run(
        &opts(URL),
        vec![conn(&with("Repr-Digest: sha-256=:AAAA:\r\n", &img))],
    );
    assert_eq!(r.result, Err(Error::Response), "malformed digest");
    // Dropped after 15000 bytes, continued with a 206 carrying the same digest.
    let first = with(&good, &img);
    let mut c = conn(&first[..first.len() - 25_000]);
    c.after = After::Reset;
    let mut cont = response_206(&img, 15_000, img.len(), "\"v1\"");
    let at = cont.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    cont.splice(at..at, good.bytes());
    let r = run(&retrying(2), vec![c, conn(&cont)]);
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.flash.inits.len(), 1, "continued");
    assert_eq!(r.flash.image(), &img[..]);
}

#[test]
fn read_back_catches_a_flash_that_mis_programs() {
    let img = image(20_000);
    let r = run_with(&opts(URL), vec![conn(&response_200(&img))], |_, f, _| {
        f.readable = true
    });
    assert_eq!(r.result, Ok(()));
    assert!(r.flash.reads >= 20_000 / FOTA_RX_BUF);
    let r = run_with(&opts(URL), vec![conn(&response_200(&img))], |_, f, _| {
        f.readable = true;
        f.bad_bit = Some((12_345, 0x04));
    });
    refused(&r, Reason::Readback, "one bit flipped by the flash");
    // Without a read hook the same flash is not caught (documented).
    let r = run_with(&opts(URL), vec![conn(&response_200(&img))], |_, f, _| {
        f.bad_bit = Some((12_345, 0x04))
    });
    assert_eq!(r.result, Ok(()));
}
