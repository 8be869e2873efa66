//! `hash:/path` — an on-disk index built from a postmap(1) source by `postern map build`, read
//! through a shared read-only memory map: opening costs one `mmap`, a lookup touches one or two
//! slots and one record, and no lookup ever reads the source.
//!
//! File format of `/path.pdb` (all integers little-endian; docs/maps.md has the rationale).
//! The suffix is not Postfix's `.db` on purpose: building a table Postfix also uses must not
//! overwrite the Berkeley DB file a running Postfix reads (both run side by side during a
//! migration).
//!
//! ```text
//! 0   header, 64 bytes
//!       0 magic "PSTNMAP\0"   8 version u32 = 1   12 flags u32 (bit 0: keys folded)
//!      16 entries u64        24 slots u64        32 records_len u64    40..64 zero
//! 64  slots × 16 bytes: hash u64 (0 = empty), record offset u64 (from the records start)
//! 64 + 16·slots  records: key_len u32, value_len u32, key bytes, value bytes
//! ```
//!
//! The slots are an open-addressing hash table (linear probing, load ≤ 0.7) over a 64-bit
//! FNV-1a hash finished with MurmurHash3's `fmix64`; a slot's full hash is compared before the
//! key, so a miss rarely reads a record. The file is written to a temporary name, fsynced and
//! renamed over the old one, so a daemon never maps a half-written index, and `is_stale` sees
//! the new inode.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::spec::TableRef;
use crate::stamp::{mtime, Stamps};
use crate::text::{fold_key, parse_source, read_source, SourceEntry};
use crate::{Kind, LookupError, MapError, Table, Warning, Warnings};

/// What `postern map build hash:/path` appends to the source path.
pub const HASH_SUFFIX: &str = ".pdb";

const MAGIC: &[u8; 8] = b"PSTNMAP\0";
const VERSION: u32 = 1;
const HEADER: usize = 64;
const SLOT: usize = 16;
const FLAG_FOLDED: u32 = 1;

/// FNV-1a (64-bit) finished with `fmix64`; never 0 (0 marks an empty slot).
fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h.max(1)
}

/// The home slot of a hash among `slots` (Lemire's multiply-shift range reduction).
fn home(h: u64, slots: u64) -> u64 {
    ((u128::from(h) * u128::from(slots)) >> 64) as u64
}

fn slot_count(entries: usize) -> u64 {
    (entries as u64 * 10).div_ceil(7).max(8)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// What a build did, for `postern map build` to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildReport {
    /// The index written (`/path.pdb`).
    pub path: PathBuf,
    pub entries: usize,
    pub bytes: u64,
    /// Skipped lines and duplicate keys.
    pub warnings: Vec<Warning>,
}

/// Builds `source.pdb` from the postmap(1) source `source`, keys folded to lower case (postmap's
/// default). Broken lines and duplicates (the first is kept) are warnings, as with postmap.
pub fn build_hash(source: &Path) -> Result<BuildReport, MapError> {
    let text = read_source(source)?;
    let file = source.display().to_string();
    let (entries, warnings) = parse_source(&text, &file, true);
    let mut report = build_hash_entries(&db_path(source), &file, entries, true)?;
    report.warnings.splice(0..0, warnings);
    report.warnings.sort_by_key(|w| w.line);
    copy_mode(source, &report.path);
    Ok(report)
}

/// Writes an index at `db` from entries already parsed (`file` names their source in
/// warnings). Keys must already be folded when `folded` is set: lookups fold theirs.
pub fn build_hash_entries(
    db: &Path,
    file: &str,
    entries: Vec<SourceEntry>,
    folded: bool,
) -> Result<BuildReport, MapError> {
    let mut warnings = Warnings::new(file);
    let slots = slot_count(entries.len());
    let mask_len = usize::try_from(slots).map_err(|_| MapError::Io {
        path: db.to_path_buf(),
        message: "too many entries for this platform".to_string(),
    })?;
    let mut table = vec![(0u64, 0u64); mask_len];
    let mut records: Vec<u8> = Vec::with_capacity(entries.len() * 48);
    let mut count = 0usize;
    for e in &entries {
        let key = e.key.as_bytes();
        let h = hash(key);
        let mut i = home(h, slots) as usize;
        loop {
            let (sh, off) = table[i];
            if sh == 0 {
                table[i] = (h, records.len() as u64);
                push_record(&mut records, key, e.value.as_bytes(), db)?;
                count += 1;
                break;
            }
            if sh == h && record_key(&records, off as usize) == Some(key) {
                warnings.push(
                    e.line,
                    format!("duplicate entry: \"{}\" (the first one is used)", e.key),
                );
                break;
            }
            i = if i + 1 == mask_len { 0 } else { i + 1 };
        }
    }
    let bytes = write_atomically(db, |out| {
        let mut header = [0u8; HEADER];
        header[0..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        let flags = if folded { FLAG_FOLDED } else { 0 };
        header[12..16].copy_from_slice(&flags.to_le_bytes());
        header[16..24].copy_from_slice(&(count as u64).to_le_bytes());
        header[24..32].copy_from_slice(&slots.to_le_bytes());
        header[32..40].copy_from_slice(&(records.len() as u64).to_le_bytes());
        out.write_all(&header)?;
        let mut buf = Vec::with_capacity(64 * 1024);
        for chunk in table.chunks(4096) {
            buf.clear();
            for &(h, off) in chunk {
                buf.extend_from_slice(&h.to_le_bytes());
                buf.extend_from_slice(&off.to_le_bytes());
            }
            out.write_all(&buf)?;
        }
        out.write_all(&records)
    })?;
    Ok(BuildReport {
        path: db.to_path_buf(),
        entries: count,
        bytes,
        warnings: warnings.into_vec(),
    })
}

fn push_record(records: &mut Vec<u8>, key: &[u8], value: &[u8], db: &Path) -> Result<(), MapError> {
    let too_long = || MapError::Io {
        path: db.to_path_buf(),
        message: "a key or value is longer than 4 GiB".to_string(),
    };
    records.extend_from_slice(
        &u32::try_from(key.len())
            .map_err(|_| too_long())?
            .to_le_bytes(),
    );
    records.extend_from_slice(
        &u32::try_from(value.len())
            .map_err(|_| too_long())?
            .to_le_bytes(),
    );
    records.extend_from_slice(key);
    records.extend_from_slice(value);
    Ok(())
}

fn record_key(records: &[u8], off: usize) -> Option<&[u8]> {
    let klen = u32_at(records, off)? as usize;
    records.get(off + 8..off + 8 + klen)
}

/// Writes `path` through `path.tmp.PID`: write, fsync, rename, fsync the directory. Returns
/// the size written.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> std::io::Result<()>,
) -> Result<u64, MapError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| -> std::io::Result<u64> {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
        Ok(bytes)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        MapError::io(path, &e)
    })
}

/// The index gets the source's permission bits, so a private source stays private.
pub(crate) fn copy_mode(source: &Path, db: &Path) {
    if let Ok(md) = std::fs::metadata(source) {
        let mode = md.permissions().mode() & 0o777;
        let _ = std::fs::set_permissions(db, std::fs::Permissions::from_mode(mode));
    }
}

pub(crate) fn db_path(source: &Path) -> PathBuf {
    let mut p = source.as_os_str().to_owned();
    p.push(HASH_SUFFIX);
    PathBuf::from(p)
}

/// An opened `hash:` index.
#[derive(Debug)]
pub struct HashTable {
    spec: String,
    path: PathBuf,
    map: Mmap,
    slots: u64,
    entries: u64,
    folded: bool,
    stamps: Stamps,
    warnings: Vec<Warning>,
}

impl HashTable {
    /// Opens `source.pdb` (the source itself need not exist). A missing or corrupt index is
    /// fatal, as in Postfix; an index older than its source is a warning
    /// (Postfix: "database … is older than source file …").
    pub fn open(source: &Path) -> Result<HashTable, MapError> {
        HashTable::open_ref(&TableRef {
            kind: "hash".to_string(),
            name: source.display().to_string(),
        })
    }

    pub(crate) fn open_ref(table: &TableRef) -> Result<HashTable, MapError> {
        let source = table.path();
        let path = db_path(source);
        let stamps = Stamps::of(&path);
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => MapError::Io {
                path: path.clone(),
                message: format!(
                    "no such file (build it with: postern map build hash:{})",
                    source.display()
                ),
            },
            _ => MapError::io(&path, &e),
        })?;
        // SAFETY: the map is read-only and private to this table. Postern replaces an index
        // only by renaming a new file over it (`write_atomically`), which leaves the mapped
        // inode untouched; truncating the file in place (not something Postern does) would
        // fault the process, as it would with Postfix's mmap'ed lmdb/cdb tables.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| MapError::io(&path, &e))?;
        let corrupt = |message: &str| MapError::Corrupt {
            path: path.clone(),
            message: message.to_string(),
        };
        if map.len() < HEADER || &map[0..8] != MAGIC {
            return Err(corrupt("not a Postern hash index"));
        }
        let version = u32_at(&map, 8).unwrap_or(0);
        if version != VERSION {
            return Err(corrupt(&format!(
                "index format version {version}, expected {VERSION}"
            )));
        }
        let flags = u32_at(&map, 12).unwrap_or(0);
        let entries = u64_at(&map, 16).unwrap_or(0);
        let slots = u64_at(&map, 24).unwrap_or(0);
        let records_len = u64_at(&map, 32).unwrap_or(0);
        let expected = slots
            .checked_mul(SLOT as u64)
            .and_then(|s| s.checked_add(HEADER as u64))
            .and_then(|s| s.checked_add(records_len));
        if slots == 0 || expected != Some(map.len() as u64) || entries > slots {
            return Err(corrupt("truncated or inconsistent index"));
        }
        let mut warnings = Vec::new();
        if let (Some(src), Some(db)) = (mtime(source), mtime(&path)) {
            if src > db {
                warnings.push(Warning {
                    file: path.display().to_string(),
                    line: 0,
                    message: format!(
                        "database is older than source file {} (run: postern map build hash:{})",
                        source.display(),
                        source.display()
                    ),
                });
            }
        }
        Ok(HashTable {
            spec: table.to_string(),
            path,
            map,
            slots,
            entries,
            folded: flags & FLAG_FOLDED != 0,
            stamps,
            warnings,
        })
    }

    /// Number of keys in the index.
    pub fn len(&self) -> u64 {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn corrupt(&self) -> LookupError {
        LookupError::Config(format!(
            "{}: corrupt index (rebuild it with: postern map build {})",
            self.path.display(),
            self.spec
        ))
    }

    /// The value bytes for `key` (already folded when the index is).
    fn find(&self, key: &[u8]) -> Result<Option<&[u8]>, LookupError> {
        let map: &[u8] = &self.map;
        let records = HEADER + self.slots as usize * SLOT;
        let h = hash(key);
        let mut i = home(h, self.slots) as usize;
        for _ in 0..self.slots {
            let at = HEADER + i * SLOT;
            let sh = u64_at(map, at).ok_or_else(|| self.corrupt())?;
            if sh == 0 {
                return Ok(None);
            }
            if sh == h {
                let off = u64_at(map, at + 8).ok_or_else(|| self.corrupt())? as usize;
                let rec = records.checked_add(off).ok_or_else(|| self.corrupt())?;
                let klen = u32_at(map, rec).ok_or_else(|| self.corrupt())? as usize;
                let vlen = u32_at(map, rec + 4).ok_or_else(|| self.corrupt())? as usize;
                let k = map
                    .get(rec + 8..rec + 8 + klen)
                    .ok_or_else(|| self.corrupt())?;
                if k == key {
                    let v = map
                        .get(rec + 8 + klen..rec + 8 + klen + vlen)
                        .ok_or_else(|| self.corrupt())?;
                    return Ok(Some(v));
                }
            }
            i = if i + 1 == self.slots as usize {
                0
            } else {
                i + 1
            };
        }
        Ok(None)
    }
}

impl Table for HashTable {
    fn lookup(&self, key: &str) -> Result<Option<String>, LookupError> {
        let folded;
        let key = if self.folded {
            folded = fold_key(key);
            folded.as_str()
        } else {
            key
        };
        Ok(self
            .find(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(v).into_owned()))
    }

    fn kind(&self) -> Kind {
        Kind::Fixed
    }

    fn spec(&self) -> &str {
        &self.spec
    }

    fn is_stale(&self) -> bool {
        self.stamps.changed()
    }

    fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

#[cfg(test)]
#[path = "hashdb_tests.rs"]
mod tests;
