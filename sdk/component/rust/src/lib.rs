//! nodata component SDK for Rust: WebAssembly transforms against the component ABI, version 1
//! (`docs/formats/component-abi.md`). No dependencies; build for `wasm32-wasi` as a `cdylib`.
//!
//! Write a function called once per input record that emits outputs, and register it:
//!
//! ```ignore
//! use nodata_component::{component, Emitter, Record, Result};
//!
//! fn process(record: &Record, out: &mut Emitter) -> Result<()> {
//!     out.forward(0) // the record unchanged to output 0
//! }
//! component!(fn process);
//! ```
//!
//! or a type implementing [`Component`] (state built once per instance from the configuration):
//! `component!(MyComponent);`.
//!
//! The registration defines the module's exports (`nodata_component_v1`, `nd_init`,
//! `nd_process`). `nd_process` reads the batch with `batch_read`, checks the whole batch against
//! the layout before the first record (a malformed batch emits nothing and returns
//! [`Error::BAD_BATCH`]), then calls the function once per record, in order. The [`Emitter`] a
//! function gets is bound to its record, so each output's `input_index` is always right. An `Err`
//! stops the batch: its code becomes `nd_process`'s result (the host then retries record by
//! record and dead-letters the failing one) and its message goes to the component log. A panic
//! traps, which the host treats the same way.
//!
//! Memory: the batch buffer and the output buffer are reused across calls and grow to the largest
//! batch and output seen; the SDK allocates nothing else per record.

use std::fmt;

mod sys {
    #[link(wasm_import_module = "nodata")]
    extern "C" {
        pub fn batch_read(ptr: *mut u8, len: i32) -> i32;
        pub fn emit(output: i32, ptr: *const u8, len: i32) -> i32;
        pub fn config(ptr: *mut u8, len: i32) -> i32;
        pub fn log(level: i32, ptr: *const u8, len: i32);
    }
}

/// An output's `timestamp_us` meaning "the input record's timestamp" (any negative value does).
pub const TIMESTAMP_INHERIT: i64 = -1;

/// A failed record: a non-zero code (what `nd_process` returns) and a message for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: i32,
    message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// emit: no such output topic.
    pub const NO_OUTPUT: i32 = -1;
    /// emit: the host could not decode the output record.
    pub const MALFORMED: i32 = -2;
    /// emit: the output record is over the host's size limit.
    pub const TOO_LARGE: i32 = -3;
    /// The guest's memory limit was reached.
    pub const NO_MEMORY: i32 = -4;
    /// nd_process: the input batch does not match the layout.
    pub const BAD_BATCH: i32 = -5;
    /// The record is not what the component expects.
    pub const BAD_INPUT: i32 = -6;

    /// An error with `code` (0 becomes [`Error::BAD_INPUT`]: a failure is never 0).
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Error { code: if code == 0 { Self::BAD_INPUT } else { code }, message: message.into() }
    }
    /// A record that is not what the component expects ([`Error::BAD_INPUT`]).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Self::BAD_INPUT, message)
    }
    pub fn code(&self) -> i32 {
        self.code
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

/// Log levels of [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// A line in the component's log (the host rate-limits it).
pub fn log(level: Level, message: &str) {
    log_bytes(level, message.as_bytes());
}

pub fn log_bytes(level: Level, message: &[u8]) {
    unsafe { sys::log(level as i32, message.as_ptr(), message.len() as i32) }
}

/// `debug!`, `info!`, `warn!`, `error!`: `format!`-style lines in the component's log.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &format!($($arg)*)) } }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*)) } }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*)) } }
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log($crate::Level::Error, &format!($($arg)*)) } }

static mut CONFIG: Option<&'static [u8]> = None;

/// The component's configuration bytes (given at registration; empty by default), read once.
pub fn config() -> &'static [u8] {
    // A wasm instance is single-threaded: the static is never accessed concurrently.
    unsafe {
        if let Some(c) = CONFIG {
            return c;
        }
        let len = sys::config(std::ptr::null_mut(), 0).max(0) as usize;
        let mut buf = Vec::new();
        if buf.try_reserve_exact(len).is_err() {
            return &[];
        }
        buf.resize(len, 0);
        let got = sys::config(buf.as_mut_ptr(), len as i32).clamp(0, len as i32) as usize;
        buf.truncate(got);
        let c: &'static [u8] = Box::leak(buf.into_boxed_slice());
        CONFIG = Some(c);
        c
    }
}

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// One input record; its bytes live in the batch buffer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Position in the batch: the outputs' `input_index`.
    pub index: u32,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_us: i64,
    pub key: &'a [u8],
    pub data: &'a [u8],
    header_count: u32,
    headers: &'a [u8], // encoded, checked
}

impl<'a> Record<'a> {
    pub fn header_count(&self) -> u32 {
        self.header_count
    }
    pub fn headers(&self) -> Headers<'a> {
        Headers { reader: Reader::new(self.headers), left: self.header_count }
    }
    /// The value of the first header called `name`.
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers().find(|h| h.name == name).map(|h| h.value)
    }
}

/// The headers of a record, in order.
pub struct Headers<'a> {
    reader: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;
    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(Header { name: self.reader.bytes()?, value: self.reader.bytes()? })
    }
}

/// An output record: key and data, headers, timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    pub timestamp_us: i64,
    pub key: &'a [u8],
    pub data: &'a [u8],
    pub headers: OutputHeaders<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum OutputHeaders<'a> {
    List(&'a [Header<'a>]),
    /// The input record's headers.
    Inherit,
}

impl<'a> Output<'a> {
    /// `key` and `data`, no headers, the input record's timestamp.
    pub fn new(key: &'a [u8], data: &'a [u8]) -> Self {
        Output { timestamp_us: TIMESTAMP_INHERIT, key, data, headers: OutputHeaders::List(&[]) }
    }
    pub fn timestamp_us(mut self, timestamp_us: i64) -> Self {
        self.timestamp_us = timestamp_us;
        self
    }
    pub fn headers(mut self, headers: &'a [Header<'a>]) -> Self {
        self.headers = OutputHeaders::List(headers);
        self
    }
    pub fn inherit_headers(mut self) -> Self {
        self.headers = OutputHeaders::Inherit;
        self
    }
}

/// Publishes outputs derived from one input record: each output's `input_index` is that record's.
pub struct Emitter<'r> {
    record: &'r Record<'r>,
    buf: &'r mut Vec<u8>,
}

impl<'r> Emitter<'r> {
    /// The input record unchanged (key, data, headers, timestamp) to output topic `output`.
    pub fn forward(&mut self, output: u32) -> Result<()> {
        let r = self.record;
        self.emit_output(output, &Output::new(r.key, r.data).inherit_headers())
    }

    /// `key` and `data`, no headers, the input's timestamp, to output topic `output`.
    pub fn emit(&mut self, output: u32, key: &[u8], data: &[u8]) -> Result<()> {
        self.emit_output(output, &Output::new(key, data))
    }

    /// `out` to output topic `output` (0-based, in registration order).
    pub fn emit_output(&mut self, output: u32, out: &Output<'_>) -> Result<()> {
        let r = self.record;
        let (header_count, headers_size) = match out.headers {
            OutputHeaders::Inherit => (r.header_count, r.headers.len() as u64),
            OutputHeaders::List(hs) => {
                (hs.len() as u32, hs.iter().map(|h| 8 + h.name.len() as u64 + h.value.len() as u64).sum())
            }
        };
        let size = 4 + 8 + 4 + out.key.len() as u64 + 4 + out.data.len() as u64 + 4 + headers_size;
        if size > i32::MAX as u64 {
            return Err(Error::new(Error::TOO_LARGE, format!("output to {} is {} bytes", output, size)));
        }
        let buf = &mut *self.buf;
        buf.clear();
        if buf.try_reserve(size as usize).is_err() {
            return Err(Error::new(Error::NO_MEMORY, "out of memory for an output record"));
        }
        buf.extend_from_slice(&r.index.to_le_bytes());
        let ts = if out.timestamp_us < 0 { TIMESTAMP_INHERIT } else { out.timestamp_us };
        buf.extend_from_slice(&ts.to_le_bytes());
        put_bytes(buf, out.key);
        put_bytes(buf, out.data);
        buf.extend_from_slice(&header_count.to_le_bytes());
        match out.headers {
            // The input's encoded headers are already in the output layout: one copy.
            OutputHeaders::Inherit => buf.extend_from_slice(r.headers),
            OutputHeaders::List(hs) => {
                for h in hs {
                    put_bytes(buf, h.name);
                    put_bytes(buf, h.value);
                }
            }
        }
        let rc = unsafe { sys::emit(output as i32, buf.as_ptr(), buf.len() as i32) };
        match rc {
            0 => Ok(()),
            Error::NO_OUTPUT => Err(Error::new(rc, format!("emit: no output {}", output))),
            Error::MALFORMED => Err(Error::new(rc, "emit: output record refused as malformed")),
            Error::TOO_LARGE => Err(Error::new(rc, "emit: output record over the size limit")),
            _ => Err(Error::new(rc, format!("emit: host answered {}", rc))),
        }
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
    buf.extend_from_slice(b);
}

/// A cursor over little-endian input; `None` when the bytes run out.
#[derive(Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.left() < n {
            return None;
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let lo = self.u32()? as u64;
        let hi = self.u32()? as u64;
        Some(lo | hi << 32)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn record(&mut self, index: u32) -> Option<Record<'a>> {
        let partition = self.u32()?;
        let offset = self.u64()?;
        let timestamp_us = self.u64()? as i64;
        let key = self.bytes()?;
        let data = self.bytes()?;
        let header_count = self.u32()?;
        // Each header takes at least 8 bytes: a count beyond that cannot be real.
        if header_count as usize > self.left() / 8 {
            return None;
        }
        let start = self.pos;
        for _ in 0..header_count {
            self.bytes()?;
            self.bytes()?;
        }
        let headers = &self.buf[start..self.pos];
        Some(Record { index, partition, offset, timestamp_us, key, data, header_count, headers })
    }
}

/// What the registered component is: a type with state, or a function.
pub trait Component: Sized {
    /// Runs once per instance (before the first batch); an `Err` fails the component.
    fn init(config: &'static [u8]) -> Result<Self>;
    /// Called once per input record, in batch order.
    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<()>;
}

/// Registers a component: `component!(fn process)` for a function
/// `fn(&Record, &mut Emitter) -> Result<()>`, or `component!(MyType)` for a [`Component`].
/// Use it once, in the cdylib crate.
#[macro_export]
macro_rules! component {
    (fn $process:path) => {
        struct __NodataFnComponent;
        impl $crate::Component for __NodataFnComponent {
            fn init(_: &'static [u8]) -> $crate::Result<Self> {
                Ok(__NodataFnComponent)
            }
            fn process(
                &mut self,
                record: &$crate::Record<'_>,
                out: &mut $crate::Emitter<'_>,
            ) -> $crate::Result<()> {
                $process(record, out)
            }
        }
        $crate::component!(__NodataFnComponent);
    };
    ($component:ty) => {
        static mut __NODATA_INSTANCE: Option<$component> = None;
        #[no_mangle]
        pub extern "C" fn nodata_component_v1() {}
        #[no_mangle]
        pub extern "C" fn nd_init() -> i32 {
            // A wasm instance is single-threaded: the static is never accessed concurrently.
            unsafe { $crate::__rt::init(&mut *::std::ptr::addr_of_mut!(__NODATA_INSTANCE)) }
        }
        #[no_mangle]
        pub extern "C" fn nd_process(batch_bytes: i32) -> i32 {
            unsafe { $crate::__rt::process(&mut *::std::ptr::addr_of_mut!(__NODATA_INSTANCE), batch_bytes) }
        }
    };
}

#[doc(hidden)]
pub mod __rt {
    use super::*;

    static mut BATCH: Vec<u8> = Vec::new();
    static mut OUTPUT: Vec<u8> = Vec::new();

    fn fail(e: &Error) -> i32 {
        if !e.message.is_empty() {
            log(Level::Error, &e.message);
        }
        e.code
    }

    pub fn init<C: Component>(slot: &mut Option<C>) -> i32 {
        match C::init(config()) {
            Ok(c) => {
                *slot = Some(c);
                0
            }
            Err(e) => fail(&e),
        }
    }

    /// # Safety
    /// Only from the single-threaded export `nd_process` (it uses the SDK's static buffers).
    pub unsafe fn process<C: Component>(slot: &mut Option<C>, batch_bytes: i32) -> i32 {
        if slot.is_none() {
            // A host that did not call nd_init: do it now.
            let rc = init(slot);
            if rc != 0 {
                return rc;
            }
        }
        let component = slot.as_mut().unwrap();
        if batch_bytes < 4 {
            return Error::BAD_BATCH;
        }
        let n = batch_bytes as usize;
        let batch = &mut *std::ptr::addr_of_mut!(BATCH);
        if batch.len() < n {
            if batch.try_reserve_exact(n - batch.len()).is_err() {
                return Error::NO_MEMORY;
            }
            batch.resize(n, 0);
        }
        if sys::batch_read(batch.as_mut_ptr(), batch_bytes) != batch_bytes {
            return Error::BAD_BATCH;
        }
        let bytes = &batch[..n];
        let mut reader = Reader::new(bytes);
        let count = reader.u32().unwrap_or(0);
        // Each record takes at least 32 bytes.
        if count as usize > (n - 4) / 32 {
            return Error::BAD_BATCH;
        }
        let first = reader.clone();
        for i in 0..count {
            if reader.record(i).is_none() {
                return Error::BAD_BATCH;
            }
        }
        if reader.left() != 0 {
            return Error::BAD_BATCH; // trailing bytes
        }
        let mut reader = first;
        for i in 0..count {
            let record = reader.record(i).unwrap();
            let mut out = Emitter { record: &record, buf: &mut *std::ptr::addr_of_mut!(OUTPUT) };
            if let Err(e) = component.process(&record, &mut out) {
                return fail(&e);
            }
        }
        0
    }
}
