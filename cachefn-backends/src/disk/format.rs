//! What one entry looks like on disk: its file name and its bytes.
//!
//! Every entry is one file, `<root>/<shard>/<name>.cfn`, where `shard` and
//! `name` are the first 2 and the last 30 lowercase hex digits of a seeded
//! 128-bit xxh3 of the key. Names are therefore short (35 bytes), plain
//! ASCII and case-safe, whatever the key.
//!
//! The file holds a fixed 36-byte header, then the full key, then the value:
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"cfnDisk\x01" (format version 1)
//!      8     8  expiry, Unix milliseconds, little-endian; 0 = never
//!     16     8  value length, little-endian
//!     24     2  key length, little-endian
//!     26     2  reserved, zero
//!     28     8  checksum: seeded xxh3-64 of bytes 0..28, the key and the value
//!     36     -  key, then value
//! ```
//!
//! A file whose length, magic or checksum does not match (torn by a power
//! cut, truncated, or simply not ours) is never returned; a file whose key
//! differs (a hash collision) is another key's entry and reads as a miss.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_128_with_seed, Xxh3};

/// Format magic; the last byte is the format version.
pub(super) const MAGIC: [u8; 8] = *b"cfnDisk\x01";
/// Length of the fixed header.
pub(super) const HEADER: usize = 36;
/// Extension of entry files.
pub(super) const EXT: &str = "cfn";
/// Extension of temporary files (always also starting with a dot).
pub(super) const TMP_EXT: &str = "tmp";
/// Seed of both hashes: fixed, since every process must agree on it.
const SEED: u64 = 0x6361_6368_6566_6e31; // "cachefn1"

/// Where the entry of one key lives.
#[derive(Debug, Clone)]
pub(super) struct Location {
    /// The shard directory, `<root>/<2 hex>`.
    pub dir: PathBuf,
    /// The entry file, `<dir>/<30 hex>.cfn`.
    pub path: PathBuf,
    /// The 30 hex digits, to name temporary files after the entry.
    pub stem: String,
    /// Which lock stripe guards writes to this entry.
    pub stripe: usize,
}

impl Location {
    pub fn of(root: &Path, key: &str, stripes: usize) -> Location {
        let hash = xxh3_128_with_seed(key.as_bytes(), SEED);
        let hex = format!("{hash:032x}");
        let (shard, stem) = hex.split_at(2);
        let dir = root.join(shard);
        let path = dir.join(format!("{stem}.{EXT}"));
        Location {
            dir,
            path,
            stem: stem.to_owned(),
            stripe: (hash >> 120) as usize % stripes,
        }
    }
}

/// `true` for a shard directory name: two lowercase hex digits.
pub(super) fn is_shard_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(is_lower_hex)
}

/// `true` for an entry file name: 30 lowercase hex digits and `.cfn`.
pub(super) fn is_entry_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((stem, ext)) => stem.len() == 30 && stem.bytes().all(is_lower_hex) && ext == EXT,
        None => false,
    }
}

/// The process id in a temporary file name (`.<stem>.<pid>.<n>.tmp`), if
/// `name` is one.
pub(super) fn temp_name_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(TMP_EXT)?;
    let mut parts = inner.split('.');
    let stem = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let _counter: u64 = parts.next()?.parse().ok()?;
    (stem.len() == 30 && parts.next() == Some("") && parts.next().is_none()).then_some(pid)
}

/// The name of a temporary file for the entry `stem`.
pub(super) fn temp_name(stem: &str, pid: u32, counter: u64) -> String {
    format!(".{stem}.{pid}.{counter}.{TMP_EXT}")
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The parsed fixed header of an entry file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub expires_ms: u64,
    pub value_len: u64,
    pub key_len: u16,
    pub checksum: u64,
}

impl Header {
    /// `true` once the entry has expired at `now_ms` (Unix milliseconds).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms != 0 && self.expires_ms <= now_ms
    }

    /// The file length this header announces.
    pub fn file_len(&self) -> u64 {
        (HEADER as u64 + self.key_len as u64).saturating_add(self.value_len)
    }

    /// The header of a value, checksum included.
    pub fn encode(expires_ms: u64, key: &[u8], value: &[u8]) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..16].copy_from_slice(&expires_ms.to_le_bytes());
        h[16..24].copy_from_slice(&(value.len() as u64).to_le_bytes());
        h[24..26].copy_from_slice(&(key.len() as u16).to_le_bytes());
        let sum = checksum(&h[..28], key, value);
        h[28..36].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// The header in `bytes`, or `None` when the magic or reserved bytes are wrong.
    pub fn decode(bytes: &[u8; HEADER]) -> Option<Header> {
        if bytes[0..8] != MAGIC || bytes[26..28] != [0, 0] {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        Some(Header {
            expires_ms: u64_at(8),
            value_len: u64_at(16),
            key_len: u16::from_le_bytes([bytes[24], bytes[25]]),
            checksum: u64_at(28),
        })
    }
}

/// The checksum of an entry: the first 28 header bytes, the key, the value.
pub(super) fn checksum(head: &[u8], key: &[u8], value: &[u8]) -> u64 {
    let mut h = Xxh3::with_seed(SEED);
    h.update(head);
    h.update(key);
    h.update(value);
    h.digest()
}

/// What reading the entry of one key found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// No file.
    Missing,
    /// A well-formed file of another key (a hash collision): not ours, left alone.
    OtherKey,
    /// A file that is not a complete entry (torn, truncated, foreign).
    Bad,
    /// A complete entry of this key whose time has passed.
    Expired,
    /// A complete entry of this key. `value` is empty when the value was not asked for.
    Live { value: Vec<u8>, expires_ms: u64 },
}

/// Read and check the entry of `key` at `path`. With `want_value` false
/// only the header and key are read (no checksum check: `Live` then means
/// "well-formed header of this key, not expired").
///
/// `on_open` sees the open file and its metadata (the read path uses it to
/// refresh the modification time that eviction orders by).
pub(super) fn read_entry(
    path: &Path,
    key: &str,
    now_ms: u64,
    want_value: bool,
    on_open: impl FnOnce(&File, &std::fs::Metadata),
) -> io::Result<Found> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Found::Bad);
    }
    let len = meta.len();
    let mut head = [0u8; HEADER];
    if len < HEADER as u64 || file.read_exact(&mut head).is_err() {
        return Ok(Found::Bad);
    }
    let Some(header) = Header::decode(&head) else {
        return Ok(Found::Bad);
    };
    if header.file_len() != len {
        return Ok(Found::Bad);
    }
    let mut stored_key = vec![0u8; header.key_len as usize];
    if file.read_exact(&mut stored_key).is_err() {
        return Ok(Found::Bad);
    }
    if stored_key != key.as_bytes() {
        return Ok(Found::OtherKey);
    }
    if header.expired(now_ms) {
        return Ok(Found::Expired);
    }
    if !want_value {
        return Ok(Found::Live {
            value: Vec::new(),
            expires_ms: header.expires_ms,
        });
    }
    let Ok(value_len) = usize::try_from(header.value_len) else {
        return Ok(Found::Bad);
    };
    let mut value = Vec::new();
    if value.try_reserve_exact(value_len).is_err() {
        return Ok(Found::Bad);
    }
    value.resize(value_len, 0);
    if file.read_exact(&mut value).is_err() {
        return Ok(Found::Bad);
    }
    if checksum(&head[..28], &stored_key, &value) != header.checksum {
        return Ok(Found::Bad);
    }
    on_open(&file, &meta);
    Ok(Found::Live {
        value,
        expires_ms: header.expires_ms,
    })
}

/// What the start of an entry file holds, for scans that do not know the key.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// No file.
    Missing,
    /// Not a well-formed entry.
    Bad,
    /// A well-formed header (the value is not checked) and the stored key.
    Entry(Header, Vec<u8>),
}

/// The header and key of the entry file at `path`.
pub(super) fn read_head(path: &Path) -> io::Result<Head> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Head::Missing),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut head = [0u8; HEADER];
    if len < HEADER as u64 || file.read_exact(&mut head).is_err() {
        return Ok(Head::Bad);
    }
    let Some(header) = Header::decode(&head) else {
        return Ok(Head::Bad);
    };
    if header.file_len() != len {
        return Ok(Head::Bad);
    }
    let mut key = vec![0u8; header.key_len as usize];
    if file.read_exact(&mut key).is_err() {
        return Ok(Head::Bad);
    }
    Ok(Head::Entry(header, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, bytes: &[u8]) {
        File::create(path).unwrap().write_all(bytes).unwrap();
    }

    fn entry(key: &str, value: &[u8], expires_ms: u64) -> Vec<u8> {
        let mut bytes = Header::encode(expires_ms, key.as_bytes(), value).to_vec();
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(value);
        bytes
    }

    fn read(path: &Path, key: &str) -> Found {
        read_entry(path, key, 1_000, true, |_, _| {}).unwrap()
    }

    #[test]
    fn names_are_short_lowercase_hex_and_recognised() {
        let root = Path::new("/r");
        let long = "k".repeat(250);
        for key in ["", "a", "A", "ns:Key:1", long.as_str()] {
            let loc = Location::of(root, key, 32);
            let name = loc.path.file_name().unwrap().to_str().unwrap();
            let shard = loc.dir.file_name().unwrap().to_str().unwrap();
            assert!(is_entry_name(name) && is_shard_name(shard), "{name}");
            assert_eq!(name, name.to_ascii_lowercase());
            assert!(name.len() < 64 && loc.stripe < 32);
            let tmp = temp_name(&loc.stem, 4242, 7);
            assert_eq!(temp_name_pid(&tmp), Some(4242));
            assert!(!is_entry_name(&tmp));
        }
        assert_ne!(
            Location::of(root, "a", 32).path,
            Location::of(root, "A", 32).path
        );
        for bad in [
            "x.cfn",
            "0123.cfn",
            ".tmp",
            "..1.2.tmp",
            "README",
            "ab.cfn.tmp",
        ] {
            assert!(!is_entry_name(bad) && temp_name_pid(bad).is_none(), "{bad}");
        }
        assert!(!is_shard_name("AB") && !is_shard_name("abc") && is_shard_name("0f"));
    }

    #[test]
    fn a_complete_entry_reads_back_and_every_torn_prefix_is_bad() {
        let dir = std::env::temp_dir().join(format!("cachefn-format-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e");
        let value: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let bytes = entry("key:1", &value, 0);
        write(&path, &bytes);
        assert_eq!(
            read(&path, "key:1"),
            Found::Live {
                value: value.clone(),
                expires_ms: 0
            }
        );
        assert_eq!(read(&path, "key:2"), Found::OtherKey);
        // Every truncation (a torn write) is Bad, never a value.
        for cut in 0..bytes.len() {
            write(&path, &bytes[..cut]);
            assert_eq!(read(&path, "key:1"), Found::Bad, "cut at {cut}");
        }
        // Every single flipped bit is never a value: Bad, another key (a
        // flip in the key) or expired (a flip in the expiry).
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            write(&path, &flipped);
            let found = read(&path, "key:1");
            assert!(
                matches!(found, Found::Bad | Found::OtherKey | Found::Expired),
                "byte {i}: {found:?}"
            );
        }
        // A longer file (garbage appended) is Bad.
        let mut longer = bytes.clone();
        longer.push(0);
        write(&path, &longer);
        assert_eq!(read(&path, "key:1"), Found::Bad);
        // Expiry.
        write(&path, &entry("key:1", b"v", 999));
        assert_eq!(read(&path, "key:1"), Found::Expired);
        write(&path, &entry("key:1", b"v", 1_001));
        assert!(matches!(read(&path, "key:1"), Found::Live { .. }));
        assert!(matches!(read_head(&path).unwrap(), Head::Entry(_, k) if k == b"key:1"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read(&path, "key:1"), Found::Missing);
        assert_eq!(read_head(&path).unwrap(), Head::Missing);
    }
}
