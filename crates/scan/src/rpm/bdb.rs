//! `Packages` as rpm wrote it up to 4.15 (CentOS 7, RHEL 8 and its
//! rebuilds): a Berkeley DB hash database keyed by header number, whose
//! values are header blobs.
//!
//! The layout (page 0 the metadata, buckets of hash pages chained by
//! `next_pgno`, values too big for a page on chains of overflow pages) is
//! walked bucket by bucket, the way rpm's own read-only reader does. The
//! file is hostile: every page is checked to lie in the file, to carry its
//! own number and to be met once, so no chain can loop and the work is
//! bounded by the size of the file.

use std::borrow::Cow;

use super::{from_blobs, Blobs, Skipped, MAX_HEADER_LEN, MAX_PACKAGES, MAX_TOTAL_BYTES};
use crate::Parsed;

const HASH_MAGIC: u32 = 0x0006_1561;
const BTREE_MAGIC: u32 = 0x0005_3162;
/// Page types (`db_page.h`).
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
/// Item types on hash pages: the bytes inline, or a pointer to overflow pages.
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
/// lsn, pgno, prev_pgno, next_pgno, entries, hf_offset, level, type.
const PAGE_HEADER: usize = 26;
/// The metadata fields read, up to the end of `spares[32]`.
const META_LEN: usize = 224;

/// The installed packages in a Berkeley DB `Packages`.
pub fn parse(bytes: &[u8]) -> Parsed {
    from_blobs(read_blobs(bytes), "Packages is not a readable Berkeley DB rpm database")
}

/// The byte order of the machine that wrote the file.
#[derive(Clone, Copy)]
struct Order {
    big_endian: bool,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> Option<usize> {
        let raw: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        } as usize)
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }
}

/// The file, its byte order and geometry, and which pages were read.
struct Db<'a> {
    bytes: &'a [u8],
    order: Order,
    page_size: usize,
    last_page: u32,
    seen: Vec<bool>,
}

impl<'a> Db<'a> {
    /// Page `n` of type `kind(s)`, read for the first time: a page met
    /// twice means a chain loops or two chains share pages.
    fn page(&mut self, n: u32, kinds: &[u8]) -> Result<&'a [u8], String> {
        if n == 0 || n > self.last_page {
            return Err(format!(
                "page {n} is outside the database (pages 1 to {})",
                self.last_page
            ));
        }
        let start = n as usize * self.page_size;
        let page = self
            .bytes
            .get(start..start + self.page_size)
            .ok_or_else(|| format!("page {n} is past the end of the file"))?;
        if std::mem::replace(&mut self.seen[n as usize], true) {
            return Err(format!("page {n} is reached twice"));
        }
        if self.order.u32(page, 8) != Some(n) {
            return Err(format!("page {n} says it is another page"));
        }
        if !kinds.contains(&page[25]) {
            return Err(format!("page {n} has type {}, not {kinds:?}", page[25]));
        }
        Ok(page)
    }

    /// A value stored on overflow pages from `first`, `len` bytes long.
    fn overflow(&mut self, first: u32, len: usize) -> Result<Vec<u8>, String> {
        if len == 0 || len > MAX_HEADER_LEN {
            return Err(format!("an overflow value of {len} bytes"));
        }
        let mut out = Vec::with_capacity(len.min(self.bytes.len()));
        let mut next = first;
        while out.len() < len {
            if next == 0 {
                return Err(format!("its overflow chain ends after {} of {len} bytes", out.len()));
            }
            let page = self.page(next, &[P_OVERFLOW])?;
            // On overflow pages `hf_offset` is the length of the data.
            let here = self.order.u16(page, 22).unwrap_or(usize::MAX);
            let data = page
                .get(PAGE_HEADER..PAGE_HEADER.saturating_add(here))
                .filter(|d| out.len() + d.len() <= len)
                .ok_or_else(|| format!("overflow page {next} holds {here} bytes, more than it can or should"))?;
            out.extend_from_slice(data);
            next = self.order.u32(page, 16).unwrap_or(0);
        }
        Ok(out)
    }

    /// An item on a hash page, as stored: its type, then its bytes or
    /// where they are.
    fn item(&mut self, item: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
        match item.first() {
            Some(&H_KEYDATA) => Ok(Cow::Borrowed(&item[1..])),
            Some(&H_OFFPAGE) if item.len() == 12 => {
                let (first, len) = (
                    self.order.u32(item, 4).unwrap_or(0),
                    self.order.u32(item, 8).unwrap_or(0),
                );
                self.overflow(first, len as usize).map(Cow::Owned)
            }
            Some(kind) => Err(format!("an item of type {kind} and {} bytes", item.len())),
            None => Err("an empty item".into()),
        }
    }
}

/// The values of a Berkeley DB hash database of rpm headers, in bucket
/// order, and what was skipped. Damage to the bucket pages themselves is
/// an error: what follows them cannot be found.
pub fn read_blobs(bytes: &[u8]) -> Result<Blobs<'_>, String> {
    let meta = bytes
        .get(..META_LEN)
        .ok_or_else(|| format!("{} bytes is too short for its metadata", bytes.len()))?;
    let magic = u32::from_le_bytes(meta[12..16].try_into().expect("4 bytes"));
    let big_endian = match magic {
        HASH_MAGIC => false,
        m if m.swap_bytes() == HASH_MAGIC => true,
        m if m == BTREE_MAGIC || m.swap_bytes() == BTREE_MAGIC => {
            return Err("it is a btree, not the hash database rpm writes".into())
        }
        _ => return Err("it has no Berkeley DB hash magic".into()),
    };
    let order = Order { big_endian };
    let field = |at: usize| order.u32(meta, at).expect("within META_LEN");
    let (version, page_size, last_page) = (field(16), field(20) as usize, field(32));
    let (max_bucket, spares) = (field(72), (0..32).map(|i| field(96 + 4 * i)).collect::<Vec<_>>());
    if !(8..=10).contains(&version) {
        return Err(format!("hash version {version} is not one this reader knows (8 to 10)"));
    }
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(format!("a page size of {page_size}"));
    }
    if meta[25] != P_HASHMETA {
        return Err(format!("page 0 has type {}, not hash metadata", meta[25]));
    }
    // rpm never encrypts or checksums its database; both move the items.
    if meta[24] != 0 || meta[26] & 1 != 0 {
        return Err("its pages are encrypted or checksummed, which rpm never writes".into());
    }
    let pages_in_file = bytes.len() / page_size;
    if last_page as usize >= pages_in_file {
        return Err(format!(
            "it claims {} pages but the file holds {pages_in_file}",
            last_page as u64 + 1
        ));
    }
    // Every bucket has a page of its own.
    if max_bucket >= last_page {
        return Err(format!(
            "it claims {} buckets in {last_page} pages",
            max_bucket as u64 + 1
        ));
    }
    let mut db = Db {
        bytes,
        order,
        page_size,
        last_page,
        seen: vec![false; last_page as usize + 1],
    };

    let (mut blobs, mut total, mut skipped) = (Vec::new(), 0usize, Skipped::default());
    for bucket in 0..=max_bucket {
        // Buckets are allocated in doubling split points; spares says where each began.
        let split = (u32::BITS - bucket.leading_zeros()) as usize;
        let mut next = spares
            .get(split)
            .and_then(|s| bucket.checked_add(*s))
            .ok_or_else(|| format!("bucket {bucket} has no page"))?;
        while next != 0 {
            let page = db.page(next, &[P_HASH, P_HASH_UNSORTED])?;
            let entries = order.u16(page, 20).unwrap_or(0);
            if PAGE_HEADER + 2 * entries > page_size {
                return Err(format!("page {next} claims {entries} items"));
            }
            let offset = |i: usize| order.u16(page, PAGE_HEADER + 2 * i).unwrap_or(0);
            // Items fill the page from its end: a key, then its value below it.
            for pair in 0..entries / 2 {
                let (k, v) = (2 * pair, 2 * pair + 1);
                let key_end = if k == 0 { page_size } else { offset(k - 1) };
                let (key_at, value_at) = (offset(k), offset(v));
                if !(PAGE_HEADER + 2 * entries <= value_at
                    && value_at < key_at
                    && key_at < key_end
                    && key_end <= page_size)
                {
                    return Err(format!("page {next} has overlapping items"));
                }
                // Header number 0 holds the next number to hand out, not a header.
                if page[key_at..key_end] == [H_KEYDATA, 0, 0, 0, 0] {
                    continue;
                }
                match db.item(&page[value_at..key_at]) {
                    Ok(blob) => {
                        if blobs.len() == MAX_PACKAGES {
                            return Err(format!("it lists more than {MAX_PACKAGES} packages"));
                        }
                        total += blob.len();
                        if total > MAX_TOTAL_BYTES {
                            return Err(format!("its headers exceed {} MiB", MAX_TOTAL_BYTES >> 20));
                        }
                        blobs.push(blob);
                    }
                    Err(e) => skipped.push(format!("Packages: value {} on page {next}: {e}; skipped", pair + 1)),
                }
            }
            next = order.u32(page, 16).unwrap_or(0);
        }
    }
    Ok((blobs, skipped.into_warnings()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpm::tests::{check_damage, fixture, Damage};

    const PAGE: usize = 4096;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn set32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// The pages of the longest overflow chain in the fixture (the big
    /// package's header), found by following `next_pgno` from its head.
    fn longest_chain(db: &[u8]) -> Vec<usize> {
        let pages = db.len() / PAGE;
        let overflow = |n: usize| db[n * PAGE + 25] == P_OVERFLOW;
        let next = |n: usize| le32(db, n * PAGE + 16) as usize;
        let pointed: Vec<usize> = (1..pages).filter(|n| overflow(*n)).map(next).collect();
        (1..pages)
            .filter(|n| overflow(*n) && !pointed.contains(n))
            .map(|head| {
                let mut chain = vec![head];
                while next(*chain.last().unwrap()) != 0 {
                    chain.push(next(*chain.last().unwrap()));
                }
                chain
            })
            .max_by_key(Vec::len)
            .unwrap()
    }

    /// Where the offpage item pointing at `first` sits on a hash page.
    fn offpage_item(db: &[u8], first: usize) -> usize {
        (1..db.len() / PAGE)
            .filter(|n| db[n * PAGE + 25] == P_HASH)
            .find_map(|n| {
                let page = &db[n * PAGE..(n + 1) * PAGE];
                let entries = u16::from_le_bytes([page[20], page[21]]) as usize;
                (0..entries)
                    .map(|i| u16::from_le_bytes([page[26 + 2 * i], page[27 + 2 * i]]) as usize)
                    .find(|&off| page[off] == H_OFFPAGE && le32(page, off + 4) as usize == first)
                    .map(|off| n * PAGE + off)
            })
            .unwrap()
    }

    /// Damage to one value's overflow chain loses that package alone, with
    /// a warning saying why; loops are caught, not followed.
    #[test]
    fn damaged_overflow_chains_skip_one_package() {
        let good = fixture("Packages");
        let chain = longest_chain(&good);
        assert!(chain.len() >= 3, "the big header spans pages: {chain:?}");
        let (first, second, last) = (chain[0], chain[1], *chain.last().unwrap());
        let item = offpage_item(&good, first);
        let cases: Vec<Damage> = vec![
            (
                "cyclic chain",
                Box::new(move |db| set32(db, second * PAGE + 16, first as u32)),
                "reached twice",
            ),
            (
                "chain longer than its value",
                Box::new(move |db| db[last * PAGE + 22..last * PAGE + 24].copy_from_slice(&[0xa0, 0x0f])),
                "more than it can or should",
            ),
            (
                "chain cut short",
                Box::new(move |db| set32(db, first * PAGE + 16, 0)),
                "ends after",
            ),
            (
                "chain leaving the file",
                Box::new(move |db| set32(db, first * PAGE + 16, 0xffff_fff0)),
                "outside the database",
            ),
            (
                "chain into the page that points at it",
                Box::new(move |db| set32(db, first * PAGE + 16, (item / PAGE) as u32)),
                "reached twice",
            ),
            (
                "page holding more than a page",
                Box::new(move |db| db[first * PAGE + 22..first * PAGE + 24].copy_from_slice(&[0xff, 0xff])),
                "holds 65535 bytes",
            ),
            (
                "value of 4 GiB",
                Box::new(move |db| set32(db, item + 8, u32::MAX)),
                "an overflow value of 4294967295 bytes",
            ),
            (
                "item of an unknown type",
                Box::new(move |db| db[item] = 4),
                "an item of type 4",
            ),
        ];
        check_damage(&good, parse, cases, 2);
    }

    /// Damage to the metadata or the bucket pages refuses the database.
    #[test]
    fn damaged_structure_refuses_the_database() {
        let good = fixture("Packages");
        let bucket = (1..good.len() / PAGE).find(|n| good[n * PAGE + 25] == P_HASH).unwrap();
        let cases: Vec<Damage> = vec![
            ("a btree", Box::new(|db| set32(db, 12, BTREE_MAGIC)), "a btree"),
            (
                "no magic",
                Box::new(|db| set32(db, 12, 0x1234)),
                "no Berkeley DB hash magic",
            ),
            ("version 7", Box::new(|db| set32(db, 16, 7)), "hash version 7"),
            (
                "odd page size",
                Box::new(|db| set32(db, 20, 3000)),
                "a page size of 3000",
            ),
            ("checksummed", Box::new(|db| db[26] = 1), "checksummed"),
            (
                "4 billion pages",
                Box::new(|db| set32(db, 32, u32::MAX)),
                "claims 4294967296 pages",
            ),
            (
                "4 billion buckets",
                Box::new(|db| set32(db, 72, u32::MAX)),
                "claims 4294967296 buckets",
            ),
            (
                "65535 items on a page",
                Box::new(move |db| db[bucket * PAGE + 20..bucket * PAGE + 22].copy_from_slice(&[0xff, 0xff])),
                "claims 65535 items",
            ),
            (
                "bucket chained to itself",
                Box::new(move |db| set32(db, bucket * PAGE + 16, bucket as u32)),
                "reached twice",
            ),
            (
                "page that is another page",
                Box::new(move |db| set32(db, bucket * PAGE + 8, 1000)),
                "says it is another page",
            ),
            (
                "overlapping items",
                Box::new(move |db| db[bucket * PAGE + 26..bucket * PAGE + 28].copy_from_slice(&[0xff, 0xff])),
                "overlapping items",
            ),
            ("truncated", Box::new(|db| db.truncate(3 * PAGE)), "the file holds 3"),
            ("empty", Box::new(|db| db.clear()), "too short"),
        ];
        check_damage(&good, parse, cases, 0);
    }

    /// Some 4096 bytes across the file damaged in turn, or the file cut
    /// every 509 bytes: never a
    /// panic, never more packages than there are.
    #[test]
    fn any_damage_is_bounded() {
        for name in ["Packages", "Packages-be64k"] {
            let good = fixture(name);
            let mut db = good.clone();
            for at in (0..good.len()).step_by(good.len() / 4096 + 1) {
                for value in [0x00, 0xff] {
                    db[at] = value;
                    assert!(parse(&db).packages.len() <= 3, "{name}: byte {at} = {value}");
                }
                db[at] = good[at];
            }
            for cut in (0..good.len()).step_by(509) {
                assert!(parse(&good[..cut]).packages.is_empty(), "{name} cut at {cut}");
            }
        }
    }
}
