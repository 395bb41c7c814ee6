//! JSON field map: the data of each record is a JSON object; the value of its top-level field
//! named by the configuration goes to output 0 as the data, with the input's key, headers and
//! timestamp.
//! - A string value is output decoded (its UTF-8 bytes, escapes resolved); any other value
//!   (number, true, false, null, object, array) as its JSON text, exactly as written in the input.
//! - A record without the field is skipped (no output, success).
//! - A record whose data is not one JSON object (bad syntax, another type, nesting deeper than 64,
//!   a lone UTF-16 surrogate in an escape) fails with `Error::BAD_INPUT`: the host dead-letters it.
//! - When the field occurs more than once the last one counts, as in JavaScript's JSON.parse.
//!
//! Bytes of 0x80 and above inside strings are passed through as they are (not UTF-8-checked).
use nodata_component::{component, Emitter, Error, Output, Record, Result};

const MAX_DEPTH: u32 = 64;

struct Scan<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            v = v << 4 | (self.next()? as char).to_digit(16)?;
        }
        Some(v)
    }
    /// A string at the cursor (which is '"'), decoded into `out` when given.
    fn string(&mut self, mut out: Option<&mut Vec<u8>>) -> Option<()> {
        self.expect(b'"')?;
        loop {
            let c = self.next()?;
            let cp = match c {
                b'"' => return Some(()),
                0..=0x1f => return None,
                b'\\' => match self.next()? {
                    c @ (b'"' | b'\\' | b'/') => c as u32,
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => 10,
                    b'r' => 13,
                    b't' => 9,
                    b'u' => {
                        let hi = self.hex4()?;
                        match hi {
                            0xDC00..=0xDFFF => return None,
                            0xD800..=0xDBFF => {
                                self.expect(b'\\')?;
                                self.expect(b'u')?;
                                let lo = self.hex4()?;
                                if !(0xDC00..=0xDFFF).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            }
                            _ => hi,
                        }
                    }
                    _ => return None,
                },
                _ => {
                    if let Some(o) = out.as_mut() {
                        o.push(c);
                    }
                    continue;
                }
            };
            if let Some(o) = out.as_mut() {
                let ch = char::from_u32(cp)?; // never None: surrogates are refused above
                let mut u = [0u8; 4];
                o.extend_from_slice(ch.encode_utf8(&mut u).as_bytes());
            }
        }
    }
    fn digits(&mut self) -> Option<()> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }
    /// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            _ => self.digits()?,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        Some(())
    }
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.s.get(self.pos..end)? == word).then(|| self.pos = end)
    }
    /// Any value at the cursor, checked and skipped; `depth` containers are open around it.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(None),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                let depth = depth + 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                self.skip_space();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    if close == b'}' {
                        if self.peek()? != b'"' {
                            return None;
                        }
                        self.string(None)?;
                        self.skip_space();
                        self.expect(b':')?;
                        self.skip_space();
                    }
                    self.value(depth)?;
                    self.skip_space();
                    match self.next()? {
                        c if c == close => return Some(()),
                        b',' => self.skip_space(),
                        _ => return None,
                    }
                }
            }
            _ => self.number(),
        }
    }
}

/// The value of `field` in the object `data`: `Some(None)` when absent, `None` when `data` is not
/// one JSON object. A string value is decoded into `decoded`; `key` is scratch space.
fn field_value<'a>(data: &'a [u8], field: &[u8], key: &mut Vec<u8>, decoded: &'a mut Vec<u8>)
    -> Option<Option<&'a [u8]>> {
    let mut s = Scan { s: data, pos: 0 };
    let mut found: Option<(usize, usize)> = None; // a raw range of data
    let mut found_string = false;
    s.skip_space();
    s.expect(b'{')?;
    s.skip_space();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            if s.peek()? != b'"' {
                return None;
            }
            key.clear();
            s.string(Some(key))?;
            s.skip_space();
            s.expect(b':')?;
            s.skip_space();
            if key.as_slice() == field {
                if s.peek() == Some(b'"') {
                    decoded.clear();
                    s.string(Some(decoded))?;
                    found_string = true;
                    found = Some((0, 0));
                } else {
                    let start = s.pos;
                    s.value(1)?;
                    found_string = false;
                    found = Some((start, s.pos));
                }
            } else {
                s.value(1)?;
            }
            s.skip_space();
            match s.next()? {
                b'}' => break,
                b',' => s.skip_space(),
                _ => return None,
            }
        }
    }
    s.skip_space();
    if s.pos != data.len() {
        return None;
    }
    Some(found.map(|(a, b)| if found_string { &decoded[..] } else { &data[a..b] }))
}

struct FieldMap {
    field: &'static [u8],
    key: Vec<u8>,
    decoded: Vec<u8>,
}

impl nodata_component::Component for FieldMap {
    fn init(config: &'static [u8]) -> Result<Self> {
        Ok(FieldMap { field: config, key: Vec::new(), decoded: Vec::new() })
    }

    fn process(&mut self, record: &Record, out: &mut Emitter) -> Result<()> {
        let value = field_value(record.data, self.field, &mut self.key, &mut self.decoded)
            .ok_or_else(|| Error::bad_input(format!("record {}: data is not a JSON object", record.index)))?;
        match value {
            None => Ok(()),
            Some(v) => out.emit_output(0, &Output::new(record.key, v).inherit_headers()),
        }
    }
}

component!(FieldMap);
