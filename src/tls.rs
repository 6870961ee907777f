//! HTTPS: TLS 1.3 (embedded-tls, blocking) on top of a [`Transport`], as a
//! [`Stream`] the session reads and writes like plain TCP.
//!
//! The server's chain is verified against the caller's CA(s) by fota's own
//! verifier ([`crate::x509`], on the certificate bytes, host name included;
//! embedded-tls is built without its rustpki verifier). A provider without a
//! verifier would verify nothing, so one without a CA is refused unless the
//! caller asked for an insecure connection explicitly. Supported: ECDSA P-256
//! certificates, TLS_AES_128_GCM_SHA256, secp256r1 key exchange.

use core::cell::Cell;

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use embedded_tls::blocking::{
    Aes128GcmSha256, Certificate, CertificateEntryRef, CertificateRef, CertificateVerifyRef,
    CryptoProvider, MaxFragmentLength, Sha256, TlsConfig, TlsConnection, TlsContext, TlsError,
    TlsVerifier,
};
use embedded_tls::SignatureScheme;
use p256::ecdsa::signature::digest::Digest;
use p256::ecdsa::signature::{self, Signer, SignerMut};
use p256::ecdsa::{SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};

use crate::hooks::{Clock, Received, Stream, System, Transport};
use crate::options::TlsOptions;
use crate::pem::{self, FOTA_TLS_MAX_CAS};
use crate::result::Error;
use crate::timer::{Idle, Timer};
use crate::x509;

/// Bytes of the TLS record read buffer: a whole record must fit (16 KiB of
/// plaintext plus overhead; 4 KiB with the `tls-4k-records` feature, which
/// asks the server for `max_fragment_length` 4096). C code sees the value of
/// its build when `FOTA_TLS_4K_RECORDS` is defined as the feature is on.
#[cfg(not(feature = "tls-4k-records"))]
pub const FOTA_TLS_RX_BUF: usize = 16_640;
/// Bytes of the TLS record read buffer (`tls-4k-records`: 4096 + overhead).
#[cfg(feature = "tls-4k-records")]
pub const FOTA_TLS_RX_BUF: usize = 4_416;
/// Bytes of the TLS record write buffer (the request is sent in records of
/// at most this size).
pub const FOTA_TLS_TX_BUF: usize = 2_048;
/// Bytes for the DER of the CA certificates, the client certificate and key.
pub const FOTA_TLS_CERT_BUF: usize = 4_096;

/// Buffers of a TLS connection, in the request's workspace.
pub struct TlsBuffers {
    rx: [u8; FOTA_TLS_RX_BUF],
    tx: [u8; FOTA_TLS_TX_BUF],
    certs: [u8; FOTA_TLS_CERT_BUF],
}

impl TlsBuffers {
    pub const fn new() -> Self {
        TlsBuffers {
            rx: [0; FOTA_TLS_RX_BUF],
            tx: [0; FOTA_TLS_TX_BUF],
            certs: [0; FOTA_TLS_CERT_BUF],
        }
    }
}

impl Default for TlsBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// The checked TLS options of a request, with certificates as DER.
pub struct Credentials<'a> {
    cas: [&'a [u8]; FOTA_TLS_MAX_CAS],
    ca_count: usize,
    client: Option<(&'a [u8], &'a [u8])>,
    insecure: bool,
    max_fragment: Option<MaxFragmentLength>,
}

impl Credentials<'_> {
    /// Whether a connection can be verified, or was declared insecure.
    pub fn usable(&self) -> bool {
        self.ca_count > 0 || self.insecure
    }

    pub fn insecure(&self) -> bool {
        self.insecure
    }
}

/// The record buffers and the DER store, borrowed separately.
pub fn split(bufs: &mut TlsBuffers) -> (&mut [u8], &mut [u8], &mut [u8]) {
    (&mut bufs.rx, &mut bufs.tx, &mut bufs.certs)
}

/// Checks the TLS options and decodes the certificates into `store`.
/// Errors: `InvalidArg` for an encrypted key, a certificate without a key
/// (or the reverse), undecodable PEM/DER, too many CAs, an unsupported
/// fragment length.
pub fn load<'a>(opts: &TlsOptions<'_>, store: &'a mut [u8]) -> Result<Credentials<'a>, Error> {
    if opts.client_password.is_some_and(|p| !p.is_empty()) {
        return Err(Error::InvalidArg);
    }
    let max_fragment = match (opts.max_fragment, cfg!(feature = "tls-4k-records")) {
        (0, false) => None,
        (0 | 4096, true) => Some(MaxFragmentLength::Bits12),
        (512, _) => Some(MaxFragmentLength::Bits9),
        (1024, _) => Some(MaxFragmentLength::Bits10),
        (2048, _) => Some(MaxFragmentLength::Bits11),
        (4096, false) => Some(MaxFragmentLength::Bits12),
        _ => return Err(Error::InvalidArg),
    };
    let mut creds = Credentials {
        cas: [&[]; FOTA_TLS_MAX_CAS],
        ca_count: 0,
        client: None,
        insecure: opts.insecure,
        max_fragment,
    };
    let mut rest: &'a mut [u8] = store;
    if !opts.server_cert.is_empty() {
        let decoded = pem::decode(opts.server_cert, b"CERTIFICATE", rest)?;
        let (cas, tail) = rest.split_at_mut(decoded.used);
        rest = tail;
        let cas: &'a [u8] = cas;
        for (slot, range) in creds
            .cas
            .iter_mut()
            .zip(&decoded.objects)
            .take(decoded.count)
        {
            *slot = cas.get(range.clone()).ok_or(Error::InvalidArg)?;
        }
        creds.ca_count = decoded.count;
    }
    match (opts.client_cert.is_empty(), opts.client_key.is_empty()) {
        (true, true) => {}
        (false, false) => {
            let decoded = pem::decode(opts.client_cert, b"CERTIFICATE", rest)?;
            let (certificate, tail) = rest.split_at_mut(decoded.used);
            let decoded_key = pem::decode(opts.client_key, b"EC PRIVATE KEY", tail)?;
            let certificate: &'a [u8] = certificate;
            let key: &'a [u8] = tail;
            let first = |d: &pem::Decoded, b: &'a [u8]| {
                d.objects
                    .first()
                    .and_then(|r| b.get(r.clone()))
                    .ok_or(Error::InvalidArg)
            };
            let pair = (first(&decoded, certificate)?, first(&decoded_key, key)?);
            if !x509::key_pair_matches(pair.0, pair.1) {
                return Err(Error::InvalidArg);
            }
            creds.client = Some(pair);
        }
        _ => return Err(Error::InvalidArg),
    }
    Ok(creds)
}

/// What the socket under the TLS connection last saw; shared with the
/// [`TlsStream`] that drives it.
#[derive(Default)]
pub struct IoState {
    /// The next read starts a new record: nothing is lost if it waits in vain.
    boundary: Cell<bool>,
    /// Timeout of that first read.
    timeout_ms: Cell<u32>,
    /// Why the last read or write failed.
    failure: Cell<Option<Failure>>,
}

#[derive(Clone, Copy)]
enum Failure {
    /// Nothing arrived at a record boundary: the connection is intact.
    Idle,
    Error(Error),
}

/// The transport as embedded-tls sees it: blocking reads and writes within
/// the request's limits.
struct Socket<'a, T, C: Clock> {
    net: &'a mut T,
    timer: &'a Timer<'a, C>,
    io: &'a IoState,
    idle: Idle,
}

impl<T, C: Clock> Socket<'_, T, C> {
    fn fail(&self, failure: Failure) -> ErrorKind {
        self.io.failure.set(Some(failure));
        ErrorKind::Other
    }
}

impl<T: Transport, C: Clock> ErrorType for Socket<'_, T, C> {
    type Error = ErrorKind;
}

impl<T: Transport, C: Clock> Read for Socket<'_, T, C> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if self.io.boundary.replace(false) {
            // One wait of the session's slice; the session decides whether
            // to wait again, so an abort or a deadline is seen in time.
            return match self.net.recv(buf, self.io.timeout_ms.get()) {
                Ok(Received::Data(n)) => {
                    self.idle = self.timer.idle();
                    Ok(n)
                }
                Ok(Received::Idle) => Err(self.fail(Failure::Idle)),
                Ok(Received::Closed) => Ok(0),
                Err(e) => Err(self.fail(Failure::Error(e))),
            };
        }
        match self.timer.receive(self.net, buf, &mut self.idle) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Ok(0),
            Err(e) => Err(self.fail(Failure::Error(e))),
        }
    }
}

impl<T: Transport, C: Clock> Write for Socket<'_, T, C> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        match self.timer.send_all(self.net, buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => Err(self.fail(Failure::Error(e))),
        }
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// An open TLS connection.
pub struct TlsStream<'a, T: Transport, C: Clock> {
    conn: TlsConnection<'a, Socket<'a, T, C>, Aes128GcmSha256>,
    io: &'a IoState,
}

impl<T: Transport, C: Clock> TlsStream<'_, T, C> {
    /// Sends close_notify (best effort); the caller closes the transport.
    pub fn close(self) {
        self.io.boundary.set(false);
        let _ = self.conn.close();
    }

    /// The request's error for a failed TLS operation.
    fn error(&self, e: TlsError) -> Error {
        match (self.io.failure.take(), e) {
            (Some(Failure::Error(e)), _) => e,
            (Some(Failure::Idle), _) => Error::Timeout,
            // The peer closed TCP without close_notify: a truncation.
            (None, TlsError::IoError) => Error::Disconnected,
            _ => Error::Tls,
        }
    }
}

impl<T: Transport, C: Clock> Stream for TlsStream<'_, T, C> {
    fn send(&mut self, data: &[u8], _timeout_ms: u32) -> Result<usize, Error> {
        self.io.boundary.set(false);
        let sent = self.conn.write(data).map_err(|e| self.error(e))?;
        self.conn.flush().map_err(|e| self.error(e))?;
        Ok(sent)
    }

    fn recv(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<Received, Error> {
        self.io.boundary.set(true);
        self.io.timeout_ms.set(timeout_ms);
        self.io.failure.set(None);
        match self.conn.read(buf) {
            Ok(0) | Err(TlsError::ConnectionClosed) => Ok(Received::Closed),
            Ok(n) => Ok(Received::Data(n)),
            Err(e) => match self.io.failure.get() {
                Some(Failure::Idle) => Ok(Received::Idle),
                _ => Err(self.error(e)),
            },
        }
    }
}

/// Opens TLS on the connected `net`: handshake within the request's limits,
/// SNI and certificate check for `host`. Errors: `Tls` for every handshake
/// or verification failure, else the transport's (`Timeout`, `Aborted`,
/// `Disconnected`); `InvalidArg` without a random hook.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open<'a, T: Transport, C: Clock, S: System>(
    net: &'a mut T,
    rx: &'a mut [u8],
    tx: &'a mut [u8],
    timer: &'a Timer<'a, C>,
    io: &'a IoState,
    sys: &mut S,
    host: &str,
    creds: &Credentials<'_>,
) -> Result<TlsStream<'a, T, C>, Error> {
    let mut config = TlsConfig::new().with_server_name(host);
    if let Some(fragment) = creds.max_fragment {
        config = config.with_max_fragment_length(fragment);
    }
    let mut rng = HookRng { sys, failure: None };
    let mut verifier = Verifier {
        cas: creds.cas.get(..creds.ca_count).unwrap_or_default(),
        host,
        now: timer.unix_time(),
        server: None,
    };
    let provider = Provider {
        rng: &mut rng,
        verifier: (!creds.insecure).then_some(&mut verifier),
        client: creds.client,
    };
    io.boundary.set(false);
    io.failure.set(None);
    let socket = Socket {
        net,
        timer,
        io,
        idle: timer.idle(),
    };
    let mut stream = TlsStream {
        conn: TlsConnection::new(socket, rx, tx),
        io,
    };
    let opened = stream.conn.open(TlsContext::new(&config, provider));
    if let Some(e) = rng.failure {
        return Err(e);
    }
    match opened {
        Ok(()) => Ok(stream),
        Err(e) => Err(stream.error(e)),
    }
}

/// Random bytes from the `random` hook; a failure is remembered and fails
/// the handshake after the fact (`fill_bytes` cannot fail).
struct HookRng<'s, S: System> {
    sys: &'s mut S,
    failure: Option<Error>,
}

impl<S: System> RngCore for HookRng<'_, S> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if let Err(e) = self.sys.random(dest) {
            self.failure.get_or_insert(e);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl<S: System> CryptoRng for HookRng<'_, S> {}

/// Verifies the chain against the CA (of several) that issued its last
/// certificate ([`x509::verify_chain`], on the certificate bytes as they
/// arrived), then the server's CertificateVerify signature with the key of
/// its certificate.
struct Verifier<'a> {
    cas: &'a [&'a [u8]],
    /// The name the URL gave, as long as it is (SNI says the same).
    host: &'a str,
    /// The date of the validity check, read from the request's own clock
    /// hook when the handshake starts (`None`: not checked).
    now: Option<u64>,
    /// After the chain passed: the server's key and the transcript hash
    /// up to its Certificate message.
    server: Option<(VerifyingKey, [u8; 32])>,
}

impl TlsVerifier<Aes128GcmSha256> for Verifier<'_> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        // embedded-tls passes the SNI name, which is `host`.
        if hostname == self.host {
            Ok(())
        } else {
            Err(TlsError::InvalidCertificate)
        }
    }

    fn verify_certificate(
        &mut self,
        transcript: &Sha256,
        chain: CertificateRef,
    ) -> Result<(), TlsError> {
        self.server = None;
        let last = chain.entries.last().map(der).unwrap_or_default();
        let ca = x509::issuer_of(self.cas, last).ok_or(TlsError::InvalidCertificate)?;
        let key = x509::verify_chain(ca, chain.entries.iter().map(der), self.host, self.now)
            .map_err(|_| TlsError::InvalidCertificate)?;
        let key = VerifyingKey::from_sec1_bytes(key).map_err(|_| TlsError::InvalidCertificate)?;
        self.server = Some((key, transcript.clone().finalize().into()));
        Ok(())
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef) -> Result<(), TlsError> {
        let (key, hash) = self.server.take().ok_or(TlsError::InvalidCertificate)?;
        if verify.signature_scheme != SignatureScheme::EcdsaSecp256r1Sha256 {
            return Err(TlsError::InvalidSignatureScheme);
        }
        x509::verify_certificate_verify(&key, &hash, verify.signature)
            .map_err(|_| TlsError::InvalidSignature)
    }
}

/// The DER of a chain entry; a raw public key (not a certificate) fails
/// as malformed.
fn der<'c>(entry: &CertificateEntryRef<'c>) -> &'c [u8] {
    match *entry {
        CertificateEntryRef::X509(der) => der,
        _ => &[],
    }
}

struct Provider<'a, 'r, 's, S: System> {
    rng: &'r mut HookRng<'s, S>,
    /// `None` only for an explicitly insecure request. Borrowed, so that
    /// handing the provider to embedded-tls does not copy the verifier.
    verifier: Option<&'r mut Verifier<'a>>,
    client: Option<(&'a [u8], &'a [u8])>,
}

impl<S: System> CryptoProvider for Provider<'_, '_, '_, S> {
    type CipherSuite = Aes128GcmSha256;
    type Signature = x509::DerSignature;

    fn rng(&mut self) -> impl embedded_tls::CryptoRngCore {
        &mut *self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        self.verifier.as_deref_mut().ok_or(TlsError::Unimplemented)
    }

    fn signer(
        &mut self,
    ) -> Result<
        (
            impl p256::ecdsa::signature::SignerMut<Self::Signature>,
            SignatureScheme,
        ),
        TlsError,
    > {
        let (_, key) = self.client.ok_or(TlsError::InvalidPrivateKey)?;
        let scalar = x509::sec1_private_key(key).ok_or(TlsError::InvalidPrivateKey)?;
        let key = SigningKey::from_slice(scalar).map_err(|_| TlsError::InvalidPrivateKey)?;
        Ok((ClientSigner(key), SignatureScheme::EcdsaSecp256r1Sha256))
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        self.client
            .map(|(certificate, _)| Certificate::X509(certificate))
    }
}

/// Signs the client's CertificateVerify with its P-256 key, DER-encoded
/// by [`x509::DerSignature`] (the `der` crate's encoder is not linked).
struct ClientSigner(SigningKey);

impl SignerMut<x509::DerSignature> for ClientSigner {
    fn try_sign(&mut self, message: &[u8]) -> Result<x509::DerSignature, signature::Error> {
        let signature: p256::ecdsa::Signature = self.0.try_sign(message)?;
        let (r, s) = signature.split_bytes();
        Ok(x509::DerSignature::new(&r.into(), &s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = include_bytes!("../tests/data/ca.pem");
    const SERVER: &[u8] = include_bytes!("../tests/data/server.pem");
    // A self-signed P-256 client certificate and its SEC1 key (test data).
    const CLIENT: &[u8] = include_bytes!("../tests/data/client.pem");
    const KEY: &[u8] = include_bytes!("../tests/data/client.key");

    fn load_with(opts: TlsOptions<'_>) -> Result<(usize, bool, bool), Error> {
        let mut store = vec![0u8; FOTA_TLS_CERT_BUF];
        load(&opts, &mut store).map(|c| (c.ca_count, c.client.is_some(), c.usable()))
    }

    #[test]
    fn no_ca_is_unusable_unless_insecure() {
        assert_eq!(load_with(TlsOptions::default()), Ok((0, false, false)));
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        assert_eq!(load_with(insecure), Ok((0, false, true)));
    }

    #[test]
    fn cas_and_client_credentials_load() {
        let mut bundle = CA.to_vec();
        bundle.extend_from_slice(SERVER);
        let opts = TlsOptions {
            server_cert: &bundle,
            client_cert: CLIENT,
            client_key: KEY,
            ..TlsOptions::default()
        };
        assert_eq!(load_with(opts), Ok((2, true, true)));
        // A key that is not the certificate's: refused before any traffic.
        let mismatched = TlsOptions {
            client_cert: SERVER,
            ..opts
        };
        assert_eq!(load_with(mismatched), Err(Error::InvalidArg));
    }

    #[test]
    fn option_errors_are_invalid_arguments() {
        let bad = [
            TlsOptions {
                client_password: Some("secret"),
                ..TlsOptions::default()
            },
            TlsOptions {
                client_cert: SERVER,
                ..TlsOptions::default()
            },
            TlsOptions {
                client_key: KEY,
                ..TlsOptions::default()
            },
            TlsOptions {
                server_cert: b"not a certificate",
                ..TlsOptions::default()
            },
            TlsOptions {
                max_fragment: 1000,
                ..TlsOptions::default()
            },
        ];
        for opts in bad {
            assert_eq!(load_with(opts), Err(Error::InvalidArg), "{opts:?}");
        }
        for max_fragment in [512, 1024, 2048, 4096] {
            let opts = TlsOptions {
                max_fragment,
                ..TlsOptions::default()
            };
            assert!(load_with(opts).is_ok());
        }
        let empty_password = TlsOptions {
            client_password: Some(""),
            ..TlsOptions::default()
        };
        assert!(load_with(empty_password).is_ok());
    }
}
