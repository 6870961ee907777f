//! Resume across reboots: a device whose NOR area and two state slots
//! survive a power loss that can strike at any byte programmed (image or
//! state), and a server that honours `Range` and `If-Range` like nginx.

use sha2::{Digest, Sha256};

use super::*;
use crate::image::discard_record;
use crate::resume::Record;
use crate::status::Snapshot;

/// How `reopen` decides what it keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keeps {
    /// Raw NOR: it cannot tell what is intact, so it keeps what the record says.
    Offset,
    /// A file system: every byte whose write returned (whole blocks).
    Written,
}

/// A NOR update area and two state slots that outlive a "reboot"; after the
/// power budget is spent, nothing is programmed any more (a torn program
/// stops at the byte the power ran out).
pub(super) struct Device {
    pub(super) mem: Vec<u8>,
    slots: [Vec<u8>; 2],
    granularity: u32,
    readable: bool,
    keeps: Keeps,
    /// Bytes (image or state) that can still be programmed; `None`: no limit.
    power: Option<usize>,
    /// State bytes that can still be programmed before the power fails.
    state_power: Option<usize>,
    dead: bool,
    /// The image left in the area: its length and the bytes written (RAM of
    /// the platform's own, rebuilt from flash after a reboot).
    left: Option<(u32, u32)>,
    open: bool,
    pub(super) committed: Option<Vec<u8>>,
    inits: usize,
    reopens: Vec<(u32, u32)>,
    ends: Vec<bool>,
    saves: usize,
    /// Offsets of the live records saved whole.
    saved: Vec<u32>,
    /// Ask the running request to abort on each read (`status` is set by
    /// [`request`]).
    abort_reads: bool,
    status: Option<&'static Status>,
    /// Every state save fails (a worn-out or broken state area).
    refuse_saves: bool,
}

const AREA: usize = 1 << 20;

impl Device {
    fn new() -> Self {
        Device {
            mem: vec![0xFF; AREA],
            slots: [Vec::new(), Vec::new()],
            granularity: 256,
            readable: true,
            keeps: Keeps::Offset,
            power: None,
            state_power: None,
            dead: false,
            left: None,
            open: false,
            committed: None,
            inits: 0,
            reopens: Vec::new(),
            ends: Vec::new(),
            saves: 0,
            saved: Vec::new(),
            abort_reads: false,
            status: None,
            refuse_saves: false,
        }
    }

    /// Power comes back: RAM is lost, flash and slots stay.
    fn reboot(&mut self) {
        self.dead = false;
        self.power = None;
        self.state_power = None;
        self.open = false;
        self.inits = 0;
        self.reopens.clear();
        self.ends.clear();
        self.saves = 0;
    }

    /// Programs `data` at `mem[at..]` (or a slot), as far as the power goes.
    fn program(&mut self, data: &[u8], state: bool) -> Result<usize, Error> {
        if self.dead {
            return Err(Error::Flash);
        }
        let mut n = data.len();
        for budget in [
            Some(&mut self.power),
            state.then_some(&mut self.state_power),
        ]
        .into_iter()
        .flatten()
        .flatten()
        {
            n = n.min(*budget);
            *budget -= n;
        }
        if n < data.len() {
            self.dead = true;
        }
        Ok(n)
    }
}

impl Flash for Device {
    fn granularity(&self) -> u32 {
        self.granularity
    }

    fn init(&mut self, image_len: u32) -> Result<(), Error> {
        assert!(!self.open, "init while an image is open");
        if self.dead {
            return Err(Error::Flash);
        }
        self.mem.fill(0xFF);
        self.inits += 1;
        self.open = true;
        self.left = Some((image_len, 0));
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
        assert!(self.open, "write without init or reopen");
        let (len, written) = self.left.expect("an image");
        assert_eq!(offset, written, "writes in order");
        let at = offset as usize;
        assert!(
            self.mem[at..at + data.len()].iter().all(|&b| b == 0xFF),
            "programming unerased bytes at {at}"
        );
        let n = self.program(data, false)?;
        self.mem[at..at + n].copy_from_slice(&data[..n]);
        if n < data.len() {
            return Err(Error::Flash);
        }
        self.left = Some((len, offset + n as u32));
        Ok(())
    }

    fn done(&mut self) -> Result<bool, Error> {
        if self.dead {
            return Err(Error::Flash);
        }
        Ok(true)
    }

    fn end(&mut self, commit: bool) -> Result<(), Error> {
        assert!(self.open, "end without init or reopen");
        if self.dead {
            return Err(Error::Flash);
        }
        self.open = false;
        self.ends.push(commit);
        let (len, _) = self.left.take().expect("an image");
        if commit {
            self.committed = Some(self.mem[..len as usize].to_vec());
        }
        Ok(())
    }

    fn can_read(&self) -> bool {
        self.readable
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        assert!(self.open);
        if self.dead {
            return Err(Error::Flash);
        }
        if self.abort_reads {
            self.status.unwrap().request_abort();
        }
        let at = offset as usize;
        buf.copy_from_slice(&self.mem[at..at + buf.len()]);
        Ok(())
    }

    fn can_persist(&self) -> bool {
        true
    }

    fn reopen(&mut self, image_len: u32, offset: u32) -> Result<u32, Error> {
        if self.dead {
            return Err(Error::Flash);
        }
        self.open = false;
        self.reopens.push((image_len, offset));
        let Some((len, written)) = self.left.filter(|&(len, _)| len == image_len) else {
            return Ok(0);
        };
        let g = self.granularity.max(1);
        let kept = match self.keeps {
            Keeps::Offset => offset,
            Keeps::Written => (written / g * g).min(len - 1) / g * g,
        };
        self.mem[kept as usize..].fill(0xFF);
        self.left = Some((len, kept));
        self.open = true;
        Ok(kept)
    }

    fn state_load(&mut self, slot: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let s = &self.slots[slot as usize];
        let n = s.len().min(buf.len());
        buf[..n].copy_from_slice(&s[..n]);
        Ok(n)
    }

    fn state_save(&mut self, slot: u32, data: &[u8]) -> Result<(), Error> {
        if self.dead || self.refuse_saves {
            return Err(Error::Flash);
        }
        // Erase, then program byte by byte.
        self.slots[slot as usize] = vec![0xFF; data.len()];
        let n = self.program(data, true)?;
        self.slots[slot as usize][..n].copy_from_slice(&data[..n]);
        if n < data.len() {
            return Err(Error::Flash);
        }
        self.saves += 1;
        if let Some(r) = Record::decode(data).filter(|r| r.live) {
            self.saved.push(r.offset);
        }
        Ok(())
    }
}

/// A server like nginx: 200 with an ETag, or 206 for `Range: bytes=N-`
/// when `If-Range` names the current ETag; counts the body bytes it sends.
pub(super) struct Server {
    image: Vec<u8>,
    etag: String,
    ranges: bool,
    request: Vec<u8>,
    /// The response, how far it was sent, and where its body starts.
    response: Option<(Vec<u8>, usize, usize)>,
    requests: Vec<String>,
    body_sent: usize,
}

impl Server {
    pub(super) fn new(image: &[u8], etag: &str) -> Self {
        Server {
            image: image.to_vec(),
            etag: etag.into(),
            ranges: true,
            request: Vec::new(),
            response: None,
            requests: Vec::new(),
            body_sent: 0,
        }
    }

    fn answer(&self, request: &str) -> (Vec<u8>, usize) {
        let header = |name: &str| {
            request
                .split("\r\n")
                .find_map(|l| l.strip_prefix(name).map(str::to_owned))
        };
        let len = self.image.len();
        let from = header("Range: bytes=")
            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
            .filter(|_| self.ranges)
            .filter(|_| header("If-Range: ").is_none_or(|v| v == self.etag))
            .filter(|&n| n < len);
        let head = match from {
            Some(n) => format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{len}\r\nContent-Length: {}\r\nETag: {}\r\n\r\n",
                len - 1,
                len - n,
                self.etag
            ),
            None => format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {}\r\n\r\n",
                self.etag
            ),
        };
        let mut r = head.into_bytes();
        let head_len = r.len();
        r.extend_from_slice(&self.image[from.unwrap_or(0)..]);
        (r, head_len)
    }
}

impl Transport for Server {
    fn connect(&mut self, _host: &str, _port: u16, _timeout_ms: u32) -> Result<(), Error> {
        self.request.clear();
        self.response = None;
        Ok(())
    }

    fn close(&mut self) {}
}

impl Stream for Server {
    fn send(&mut self, data: &[u8], _timeout_ms: u32) -> Result<usize, Error> {
        self.request.extend_from_slice(data);
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8], _timeout_ms: u32) -> Result<Received, Error> {
        if self.response.is_none() {
            let text = String::from_utf8_lossy(&self.request).into_owned();
            assert!(
                text.ends_with("\r\n\r\n"),
                "recv before the request was sent"
            );
            let (r, head) = self.answer(&text);
            self.response = Some((r, 0, head));
            self.requests.push(text);
        }
        let (r, pos, head) = self.response.as_mut().unwrap();
        let n = (r.len() - *pos).min(buf.len()).min(1460);
        if n == 0 {
            return Ok(Received::Closed);
        }
        buf[..n].copy_from_slice(&r[*pos..*pos + n]);
        self.body_sent += (*pos + n).max(*head) - (*pos).max(*head);
        *pos += n;
        Ok(Received::Data(n))
    }
}

/// One request of `device` against `server` (the server's byte count and
/// request log grow across calls).
pub(super) fn request(
    o: &Options<'_>,
    server: &mut Server,
    device: &mut Device,
) -> (Result<(), Error>, Snapshot) {
    let (result, snapshot, _) = request_over(o, server, device);
    (result, snapshot)
}

/// One request of `device` over any transport: the result, the progress
/// figures and the log lines.
fn request_over<T: Transport>(
    o: &Options<'_>,
    net: &mut T,
    device: &mut Device,
) -> (Result<(), Error>, Snapshot, String) {
    let time: Time = Rc::new(Cell::new(1000));
    let mut sys = FakeSys::new(&time);
    let clock = FakeClock::of(&sys);
    let status: &'static Status = Box::leak(Box::new(Status::new()));
    device.status = Some(status);
    let mut ws = Box::new(Workspace::new());
    let result = super::super::run(&mut ws, net, device, &clock, &mut sys, status, o);
    if result.is_err() {
        assert!(device.ends.iter().all(|&c| !c), "no commit on failure");
    }
    let logs: Vec<String> = sys.logs.iter().map(|l| l.1.clone()).collect();
    (result, status.snapshot(), logs.join("\n"))
}

/// The offsets of the live records in the slots, newest first.
fn records(device: &Device) -> Vec<u32> {
    let mut live: Vec<(u32, u32)> = device
        .slots
        .iter()
        .filter_map(|s| Record::decode(s))
        .filter(|r| r.live)
        .map(|r| (r.seq, r.offset))
        .collect();
    live.sort_by(|a, b| b.cmp(a));
    live.into_iter().map(|(_, offset)| offset).collect()
}

fn resumable(interval: u32) -> Options<'static> {
    let mut o = opts(URL);
    o.state_interval = interval;
    o
}

/// Power fails after `budget` bytes programmed (image and state); then the
/// device reboots and asks again until the image is committed.
fn power_loss_then_reboot(
    img: &[u8],
    o: &Options<'_>,
    device: &mut Device,
    budget: usize,
) -> (Snapshot, usize) {
    let mut server = Server::new(img, "\"v1\"");
    device.power = Some(budget);
    let (first, _) = request(o, &mut server, device);
    if first.is_ok() {
        assert_eq!(device.committed.as_deref(), Some(img));
        return (Snapshot::default(), server.body_sent);
    }
    assert!(
        device.committed.is_none(),
        "nothing committed before the power loss"
    );
    device.reboot();
    let (again, snap) = request(o, &mut server, device);
    assert_eq!(again, Ok(()), "budget {budget}");
    assert_eq!(
        device.committed.as_deref(),
        Some(img),
        "budget {budget}: byte-identical"
    );
    (snap, server.body_sent)
}

#[test]
fn power_lost_at_any_byte_of_the_download_resumes_and_commits_the_same_image() {
    let img = image(100_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    for (granularity, keeps, checked) in [
        (256, Keeps::Offset, true),
        (256, Keeps::Written, false),
        (0, Keeps::Written, true),
        (4096, Keeps::Offset, false),
    ] {
        let mut o = resumable(8192);
        if checked {
            o.image_sha256 = Some(&sha);
        }
        let mut resumed = 0;
        for budget in (0..110_000).step_by(1999) {
            let mut device = Device::new();
            device.granularity = granularity;
            device.keeps = keeps;
            let (snap, fetched) = power_loss_then_reboot(&img, &o, &mut device, budget);
            let from = snap.resumed_from as usize;
            resumed += usize::from(from > 0);
            // What is fetched twice: at most the bytes since the last save
            // (or the last whole block), a torn write, the record bytes, and
            // one receive buffer in flight.
            // Before the first save there is nothing to resume from.
            if budget > 8192 + 2 * 4096 + 200 && budget < img.len() {
                let redone = budget.saturating_sub(from);
                let slack = match keeps {
                    Keeps::Offset => 8192,
                    Keeps::Written => 0,
                } + granularity as usize
                    + 4096
                    + 1500;
                assert!(from > 0, "budget {budget}: resumed");
                assert!(redone <= slack, "budget {budget}: resumed from {from}");
                assert!(
                    fetched <= img.len() + redone + 4096 + 1460,
                    "budget {budget}: fetched {fetched}, resumed from {from}"
                );
            }
        }
        assert!(resumed > 40, "{resumed} resumed");
    }
}

/// The state save at which the power fails, torn at each of its bytes.
#[test]
fn a_state_save_torn_at_any_byte_keeps_the_previous_record() {
    let img = image(40_000);
    let o = resumable(4096);
    // The saves of an uninterrupted download: offsets and sizes.
    let mut clean = Device::new();
    let mut server = Server::new(&img, "\"v1\"");
    assert_eq!(request(&o, &mut server, &mut clean).0, Ok(()));
    let offsets = clean.saved.clone();
    let record_len = 84 + 4 + 4;
    assert!(offsets.len() >= 5, "{offsets:?}");
    for save in 1..=4usize {
        for byte in 0..=record_len {
            let mut device = Device::new();
            device.state_power = Some((save - 1) * record_len + byte);
            let mut server = Server::new(&img, "\"v1\"");
            let (first, _) = request(&o, &mut server, &mut device);
            assert!(first.is_err());
            device.reboot();
            let (again, snap) = request(&o, &mut server, &mut device);
            assert_eq!(again, Ok(()));
            assert_eq!(device.committed.as_deref(), Some(&img[..]));
            // The save torn, the one before it is taken up.
            let complete = if byte == record_len { save } else { save - 1 };
            let want = complete.checked_sub(1).map_or(0, |i| offsets[i]);
            assert_eq!(snap.resumed_from, want, "save {save} torn at byte {byte}");
        }
    }
}

#[test]
fn a_clean_failure_keeps_the_image_for_the_next_request() {
    let img = image(60_000);
    let mut device = Device::new();
    device.granularity = 0;
    let mut o = resumable(1 << 20);
    o.max_retries = 0;
    // The connection drops at byte 33,333: no save was due yet, but the
    // failure saves one.
    let mut s = Server::new(&img, "\"v1\"");
    // A server that sends only the first 33,333 body bytes.
    let (mut resp, head) = s.answer("GET / HTTP/1.1\r\n\r\n");
    resp.truncate(head + 33_333);
    let time: Time = Rc::new(Cell::new(1000));
    let (r, _, logs) = request_over(
        &o,
        &mut ScriptNet::new(&time, vec![conn(&resp)]),
        &mut device,
    );
    assert!(logs.contains("kept for a resume at byte 33333"), "{logs}");
    assert_eq!(r, Err(Error::Disconnected));
    assert!(
        device.ends.is_empty(),
        "no end: the image waits for the next request"
    );
    let (again, snap) = request(&o, &mut s, &mut device);
    assert_eq!(again, Ok(()));
    assert_eq!(snap.resumed_from, 33_333);
    assert_eq!(device.reopens, vec![(60_000, 33_333)]);
    assert_eq!(device.ends, vec![true]);
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
    assert!(s.requests[0].contains("Range: bytes=33333-\r\nIf-Range: \"v1\"\r\n"));
    assert_eq!(s.body_sent, 60_000 - 33_333, "nothing fetched twice");
    // Committed: the record is a tombstone; the next request starts from 0.
    device.committed = None;
    let (third, snap) = request(&o, &mut s, &mut device);
    assert_eq!(third, Ok(()));
    assert_eq!(snap.resumed_from, 0);
    assert!(device.reopens.len() == 1 && device.inits == 2);
}

/// Interrupts a download after `bytes` with a power loss; returns the device.
pub(super) fn interrupted(img: &[u8], o: &Options<'_>, bytes: usize) -> Device {
    let mut device = Device::new();
    device.power = Some(bytes);
    let mut server = Server::new(img, "\"v1\"");
    assert!(request(o, &mut server, &mut device).0.is_err());
    device.reboot();
    device
}

#[test]
fn a_record_that_does_not_match_is_never_spliced() {
    let img = image(50_000);
    let mut newer = img.clone();
    newer[7] ^= 0x40;
    let o = resumable(4096);
    // The image changed on the server: the resume asks with If-Range, gets
    // the whole new image, and the kept part is ended with end(false).
    let mut device = interrupted(&img, &o, 30_000);
    let kept = records(&device)[0];
    let mut server = Server::new(&newer, "\"v2\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(device.committed.as_deref(), Some(&newer[..]));
    assert_eq!(
        snap.resumed_from, kept,
        "taken up, then refused by the server"
    );
    assert_eq!(device.ends, vec![false, true]);
    assert!(server.requests[0].contains("If-Range: \"v1\""));
    // A server without Range support: the whole image from byte 0.
    let mut device = interrupted(&img, &o, 30_000);
    let mut server = Server::new(&img, "\"v1\"");
    server.ranges = false;
    assert_eq!(request(&o, &mut server, &mut device).0, Ok(()));
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
    assert_eq!(server.body_sent, 50_000);
    // A record of another URL: forgotten before any traffic, no reopen.
    let mut device = interrupted(&img, &o, 30_000);
    let other = resumable(4096);
    let other = Options {
        url: Some("http://fw.example.com/other.bin"),
        ..other
    };
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&other, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, 0);
    assert!(device.reopens.is_empty());
    assert!(!server.requests[0].contains("Range"));
    // Another expected digest (a newer manifest): forgotten too.
    let sha_old: [u8; 32] = Sha256::digest(&img).into();
    let sha_new: [u8; 32] = Sha256::digest(&newer).into();
    let mut old = resumable(4096);
    old.image_sha256 = Some(&sha_old);
    let mut new = resumable(4096);
    new.image_sha256 = Some(&sha_new);
    let mut device = interrupted(&img, &old, 30_000);
    let mut server = Server::new(&newer, "\"v2\"");
    assert_eq!(request(&new, &mut server, &mut device).0, Ok(()));
    assert!(device.reopens.is_empty());
    assert_eq!(device.committed.as_deref(), Some(&newer[..]));
}

#[test]
fn a_corrupted_newest_slot_falls_back_to_the_older_record() {
    let img = image(50_000);
    let o = resumable(4096);
    let mut device = interrupted(&img, &o, 30_000);
    let kept = records(&device);
    let newest = (0..2)
        .find(|&i| Record::decode(&device.slots[i]).map(|r| r.offset) == Some(kept[0]))
        .unwrap();
    device.slots[newest][20] ^= 1;
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, kept[1], "the older record");
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
    // Both slots corrupted: from byte 0.
    let mut device = interrupted(&img, &o, 30_000);
    device.slots[0].truncate(40);
    device.slots[1][90] ^= 0x80;
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, 0);
    assert_eq!(server.body_sent, 50_000);
}

#[test]
fn a_digest_check_without_a_read_hook_does_not_resume() {
    let img = image(50_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    let mut o = resumable(4096);
    o.image_sha256 = Some(&sha);
    let mut device = interrupted(&img, &o, 30_000);
    device.readable = false;
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(
        snap.resumed_from, 0,
        "the digest could not cover the kept bytes"
    );
    assert!(device.reopens.is_empty());
    // Without a check that needs the digest, no read is needed.
    let o = resumable(4096);
    let mut device = interrupted(&img, &o, 30_000);
    device.readable = false;
    let kept = records(&device)[0];
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, kept);
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
}

#[test]
fn kept_bytes_that_differ_are_caught_by_the_rebuilt_digest() {
    let img = image(50_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    let mut o = resumable(4096);
    o.image_sha256 = Some(&sha);
    let mut device = interrupted(&img, &o, 30_000);
    device.mem[100] ^= 1; // a bit the flash lost while the power was off
    let kept = records(&device)[0];
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Err(Error::Verify));
    assert_eq!(snap.resumed_from, kept);
    assert!(device.committed.is_none());
    // The record is forgotten: the next request starts from 0 and succeeds.
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, 0);
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
}

#[test]
fn the_record_can_be_discarded_explicitly() {
    let img = image(50_000);
    let o = resumable(4096);
    let mut device = interrupted(&img, &o, 30_000);
    assert_eq!(discard_record(&mut device), Ok(()));
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, 0);
    assert!(device.reopens.is_empty());
    // Nothing to discard, or slots that refuse the tombstone.
    assert_eq!(discard_record(&mut device), Ok(()));
    let mut device = interrupted(&img, &o, 30_000);
    device.dead = true;
    assert_eq!(discard_record(&mut device), Err(Error::Flash));
}

#[test]
fn no_validator_no_record() {
    let img = image(50_000);
    let o = resumable(4096);
    let mut device = Device::new();
    let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", img.len()).into_bytes();
    resp.extend_from_slice(&img[..30_000]);
    let time: Time = Rc::new(Cell::new(1000));
    let (r, _, _) = request_over(
        &o,
        &mut ScriptNet::new(&time, vec![conn(&resp)]),
        &mut device,
    );
    assert_eq!(r, Err(Error::Disconnected));
    assert_eq!(device.saves, 0, "nothing proves the image: never persisted");
    assert_eq!(device.ends, vec![false]);
}

#[test]
fn an_abort_while_the_kept_bytes_are_read_back_keeps_the_record() {
    let img = image(50_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    let mut o = resumable(4096);
    o.image_sha256 = Some(&sha);
    let mut device = interrupted(&img, &o, 30_000);
    let kept = records(&device)[0];
    device.abort_reads = true;
    let mut server = Server::new(&img, "\"v1\"");
    let (r, _) = request(&o, &mut server, &mut device);
    assert_eq!(r, Err(Error::Aborted));
    assert!(server.requests.is_empty(), "no traffic");
    assert!(device.ends.is_empty(), "kept for the next request");
    assert_eq!(records(&device)[0], kept);
    device.abort_reads = false;
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, kept);
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
}

#[test]
fn a_record_that_cannot_be_forgotten_blocks_a_new_image() {
    let img = image(50_000);
    let o = resumable(4096);
    let mut device = interrupted(&img, &o, 30_000);
    let kept = records(&device)[0];
    device.refuse_saves = true;
    // Another URL: its image would overwrite the bytes the record names.
    let other = Options {
        url: Some("http://fw.example.com/other.bin"),
        ..resumable(4096)
    };
    let mut server = Server::new(&img, "\"v9\"");
    let (r, _) = request(&other, &mut server, &mut device);
    assert_eq!(r, Err(Error::Flash));
    assert_eq!(device.inits, 0, "the area is not touched");
    assert_eq!(records(&device)[0], kept);
    // The request the record belongs to still continues (saves failing
    // only cost the chance to resume again).
    let mut server = Server::new(&img, "\"v1\"");
    let (r, snap) = request(&o, &mut server, &mut device);
    assert_eq!(r, Ok(()));
    assert_eq!(snap.resumed_from, kept);
    assert_eq!(device.committed.as_deref(), Some(&img[..]));
}
