//! `Packages.db`, rpm's own NDB format (SUSE since 15 SP3, openSUSE):
//! a 32-byte file header, pages of 16-byte slots that say where each
//! package's blob is (in 16-byte blocks), then the blobs, each framed by
//! a head (`BlbS`, package index, generation, length) and a tail (Adler-32
//! of head and data, length, `BlbE`). All little-endian, as rpm writes it
//! on every machine (`lib/backend/ndb/rpmpkg.c`).
//!
//! Slots and blobs are checked against the file before they are read,
//! and each blob against its checksum; the slot area is bounded by the
//! file, so a hostile count cannot make the reader loop past it.

use std::borrow::Cow;

use super::{from_blobs, Blobs, Skipped, MAX_HEADER_LEN, MAX_PACKAGES, MAX_TOTAL_BYTES};
use crate::Parsed;

const DB_MAGIC: &[u8; 4] = b"RpmP";
const SLOT_MAGIC: &[u8; 4] = b"Slot";
const BLOB_HEAD_MAGIC: &[u8; 4] = b"BlbS";
const BLOB_TAIL_MAGIC: &[u8; 4] = b"BlbE";
const DB_HEADER: usize = 32;
const SLOT: usize = 16;
const BLOCK: usize = 16;
const PAGE: usize = 4096;
const BLOB_HEAD: usize = 16;
const BLOB_TAIL: usize = 12;

/// The installed packages in an NDB `Packages.db`.
pub fn parse(bytes: &[u8]) -> Parsed {
    from_blobs(read_blobs(bytes), "Packages.db is not a readable rpm NDB database")
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|x| x.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Adler-32 (RFC 1950), which rpm keeps in each blob's tail.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that cannot overflow before the reduction.
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += x as u32;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// One package's place in the file.
struct Slot {
    package: u32,
    block: usize,
    blocks: usize,
}

/// The blob a slot points at, checked against its frame and checksum.
fn blob<'a>(bytes: &'a [u8], slot: &Slot) -> Result<&'a [u8], String> {
    let start = slot.block * BLOCK;
    let framed = bytes
        .get(start..start + slot.blocks * BLOCK)
        .ok_or("it lies past the end of the file")?;
    if framed.len() < BLOB_HEAD + BLOB_TAIL || &framed[..4] != BLOB_HEAD_MAGIC {
        return Err("it has no blob head".into());
    }
    if le32(framed, 4) != slot.package {
        return Err(format!("its blob belongs to package {}", le32(framed, 4)));
    }
    let len = le32(framed, 12) as usize;
    if len > MAX_HEADER_LEN || (BLOB_HEAD + len + BLOB_TAIL).div_ceil(BLOCK) != slot.blocks {
        return Err(format!(
            "a blob of {len} bytes does not fill its {} blocks",
            slot.blocks
        ));
    }
    let tail = &framed[framed.len() - BLOB_TAIL..];
    if le32(tail, 4) as usize != len || &tail[8..] != BLOB_TAIL_MAGIC {
        return Err("its blob tail is damaged".into());
    }
    if adler32(&framed[..framed.len() - BLOB_TAIL]) != le32(tail, 0) {
        return Err("its blob fails its checksum".into());
    }
    Ok(&framed[BLOB_HEAD..BLOB_HEAD + len])
}

/// The header blobs of an NDB database, in package index order (the order
/// of installation), and what was skipped.
pub fn read_blobs(bytes: &[u8]) -> Result<Blobs<'_>, String> {
    if bytes.len() < DB_HEADER || &bytes[..4] != DB_MAGIC {
        return Err("it has no NDB magic".into());
    }
    let version = le32(bytes, 4);
    if version != 0 {
        return Err(format!("NDB version {version} is not one this reader knows (0)"));
    }
    let slot_pages = le32(bytes, 12) as usize;
    let slot_end = slot_pages
        .checked_mul(PAGE)
        .filter(|end| *end > 0 && *end <= bytes.len())
        .ok_or_else(|| format!("{slot_pages} slot pages do not fit in {} bytes", bytes.len()))?;
    let (file_blocks, first_blob_block) = (bytes.len() / BLOCK, slot_end / BLOCK);
    let mut skipped = Skipped::default();
    let mut slots = Vec::new();
    for at in (DB_HEADER..slot_end).step_by(SLOT) {
        let number = (at - DB_HEADER) / SLOT + 1;
        if &bytes[at..at + 4] != SLOT_MAGIC {
            return Err(format!("slot {number} is damaged"));
        }
        let (package, block, blocks) = (
            le32(bytes, at + 4),
            le32(bytes, at + 8) as usize,
            le32(bytes, at + 12) as usize,
        );
        if block == 0 {
            continue; // a free slot
        }
        if package == 0 || blocks == 0 || block < first_blob_block || block + blocks > file_blocks {
            skipped.push(format!(
                "Packages.db: slot {number} points outside the blob area (blocks {block}+{blocks}); skipped"
            ));
            continue;
        }
        if slots.len() == MAX_PACKAGES {
            return Err(format!("it lists more than {MAX_PACKAGES} packages"));
        }
        slots.push(Slot { package, block, blocks });
    }
    slots.sort_by_key(|s| s.package);
    let (mut blobs, mut total) = (Vec::with_capacity(slots.len()), 0usize);
    for slot in &slots {
        // Bounded before the checksum is computed: slots may share blobs.
        total += slot.blocks * BLOCK;
        if total > MAX_TOTAL_BYTES {
            return Err(format!("its headers exceed {} MiB", MAX_TOTAL_BYTES >> 20));
        }
        match blob(bytes, slot) {
            Ok(b) => blobs.push(Cow::Borrowed(b)),
            Err(e) => skipped.push(format!("Packages.db: package {}: {e}; skipped", slot.package)),
        }
    }
    Ok((blobs, skipped.into_warnings()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpm::tests::{check_damage, fixture, Damage};

    fn set32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Offsets of the used slots in the fixture.
    fn used_slots(db: &[u8]) -> Vec<usize> {
        (DB_HEADER..PAGE)
            .step_by(SLOT)
            .filter(|at| le32(db, at + 8) != 0)
            .collect()
    }

    #[test]
    fn adler32_matches_rfc_1950() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(&[]), 1);
        // Long runs of 0xff are where a late reduction would overflow.
        let ff = vec![0xff; 1 << 20];
        assert_eq!(adler32(&ff), adler32_slow(&ff));
    }

    /// The definition, reducing at every byte.
    fn adler32_slow(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u64, 0u64);
        for &x in data {
            a = (a + x as u64) % 65521;
            b = (b + a) % 65521;
        }
        ((b << 16) | a) as u32
    }

    /// A damaged slot or blob loses that package alone, with a warning.
    #[test]
    fn damaged_blobs_skip_one_package() {
        let good = fixture("Packages.db");
        let slots = used_slots(&good);
        assert_eq!(slots.len(), 3);
        let (s0, s1) = (slots[0], slots[1]);
        let blob0 = le32(&good, s0 + 8) as usize * BLOCK;
        let cases: Vec<Damage> = vec![
            (
                "a flipped byte",
                Box::new(move |db| db[blob0 + 100] ^= 1),
                "fails its checksum",
            ),
            (
                "a slot past the end",
                Box::new(move |db| set32(db, s0 + 12, 0x7fff_ffff)),
                "points outside",
            ),
            (
                "a slot into the slot pages",
                Box::new(move |db| set32(db, s0 + 8, 1)),
                "points outside",
            ),
            (
                "two slots, one blob",
                Box::new(move |db| {
                    let (off, cnt) = (le32(db, s0 + 8), le32(db, s0 + 12));
                    set32(db, s1 + 8, off);
                    set32(db, s1 + 12, cnt);
                }),
                "belongs to package",
            ),
            (
                "a blob longer than its blocks",
                Box::new(move |db| set32(db, blob0 + 12, 1 << 20)),
                "does not fill",
            ),
            ("a broken head", Box::new(move |db| db[blob0] = b'X'), "no blob head"),
            (
                "a broken tail",
                Box::new(move |db| {
                    let end = (le32(db, s0 + 8) + le32(db, s0 + 12)) as usize * BLOCK;
                    db[end - 1] = b'X';
                }),
                "tail is damaged",
            ),
        ];
        check_damage(&good, parse, cases, 2);
    }

    /// Damage to the file header or the slot pages refuses the database.
    #[test]
    fn damaged_structure_refuses_the_database() {
        let good = fixture("Packages.db");
        let cases: Vec<Damage> = vec![
            ("no magic", Box::new(|db| db[0] = b'X'), "no NDB magic"),
            ("version 1", Box::new(|db| set32(db, 4, 1)), "NDB version 1"),
            (
                "4 billion slot pages",
                Box::new(|db| set32(db, 12, u32::MAX)),
                "do not fit",
            ),
            ("no slot pages", Box::new(|db| set32(db, 12, 0)), "do not fit"),
            (
                "a broken slot",
                Box::new(|db| db[DB_HEADER + 5 * SLOT] = b'X'),
                "slot 6 is damaged",
            ),
            ("cut in the slots", Box::new(|db| db.truncate(PAGE - 1)), "do not fit"),
        ];
        check_damage(&good, parse, cases, 0);
    }

    /// Slots that all point at one large blob would make the reader check
    /// it again and again: the bytes of all blobs together are bounded.
    #[test]
    fn slots_sharing_a_large_blob_are_bounded() {
        let blob_blocks = MAX_HEADER_LEN / BLOCK;
        let mut db = vec![0u8; PAGE + MAX_HEADER_LEN];
        db[..4].copy_from_slice(DB_MAGIC);
        set32(&mut db, 12, 1);
        for (i, at) in (DB_HEADER..PAGE).step_by(SLOT).enumerate() {
            db[at..at + 4].copy_from_slice(SLOT_MAGIC);
            set32(&mut db, at + 4, i as u32 + 1);
            set32(&mut db, at + 8, (PAGE / BLOCK) as u32);
            set32(&mut db, at + 12, blob_blocks as u32);
        }
        let p = parse(&db);
        assert!(p.packages.is_empty());
        assert!(
            p.warnings.len() == 1 && p.warnings[0].contains("exceed 128 MiB"),
            "{:?}",
            p.warnings
        );
    }

    /// Some 4096 bytes across the file damaged in turn, or the file cut
    /// every 509 bytes: never a
    /// panic, never more packages than there are.
    #[test]
    fn any_damage_is_bounded() {
        let good = fixture("Packages.db");
        let mut db = good.clone();
        for at in (0..good.len()).step_by(good.len() / 4096 + 1) {
            for value in [0x00, 0xff] {
                db[at] = value;
                assert!(parse(&db).packages.len() <= 3, "byte {at} = {value}");
            }
            db[at] = good[at];
        }
        for cut in (0..good.len()).step_by(509) {
            assert!(parse(&good[..cut]).packages.len() < 3, "cut at {cut}");
        }
    }
}
