//! Fidelity of the PN532 emulator, judged by a client nobody here wrote: Debian's libnfc-bin
//! (`nfc-list`, `nfc-mfclassic`) through its `pn532_uart` driver.

mod pn532_support;

use pn532_support::{Emulator, libnfc_tool as libnfc};

/// A 1K image with recognisable data and factory trailers.
fn image(uid: [u8; 4]) -> Vec<u8> {
    let mut image = vec![0u8; 1024];
    for (block, chunk) in image.chunks_mut(16).enumerate() {
        let block = u8::try_from(block).expect("64 blocks");
        if block == 0 {
            let bcc = uid.iter().fold(0, |a, b| a ^ b);
            chunk[..4].copy_from_slice(&uid);
            chunk[4..8].copy_from_slice(&[bcc, 0x08, 0x04, 0x00]);
        } else if block % 4 == 3 {
            chunk.copy_from_slice(&[
                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x80, 0x69, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF,
            ]);
        } else {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = block
                    .wrapping_mul(16)
                    .wrapping_add(u8::try_from(i).expect("16"));
            }
        }
    }
    image
}

#[test]
fn nfc_list_detects_the_emulated_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _emu = Emulator::start(&dir.path().join("pn532"), &["--uid", "DEADBEEF"]);
    let out = libnfc(&dir.path().join("pn532"), "nfc-list", &[], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 ISO14443A passive target(s) found"),
        "{text}"
    );
    assert!(text.contains("UID (NFCID1): de  ad  be  ef"), "{text}");
    assert!(text.contains("SAK (SEL_RES): 08"), "{text}");
    assert!(text.contains("ATQA (SENS_RES): 00  04"), "{text}");
}

#[test]
fn nfc_mfclassic_dumps_and_writes_the_card_with_factory_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("pn532");
    let original = image([0x12, 0x34, 0x56, 0x78]);
    let load = dir.path().join("card.mfd");
    std::fs::write(&load, &original).expect("image");
    let save = dir.path().join("saved.mfd");
    let emu = Emulator::start(
        &link,
        &[
            "--load",
            &load.display().to_string(),
            "--save",
            &save.display().to_string(),
        ],
    );
    let out = libnfc(
        &link,
        "nfc-mfclassic",
        &["r", "a", "u", "dump.mfd"],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Done, 64 of 64 blocks read"), "{text}");
    let dump = std::fs::read(dir.path().join("dump.mfd")).expect("dump");
    assert_eq!(dump.len(), 1024);
    for (block, (got, want)) in dump.chunks(16).zip(original.chunks(16)).enumerate() {
        if block % 4 == 3 {
            // nfc-mfclassic fills in the key it used; the access bits are read from the card.
            assert_eq!(got[..10], want[..10], "trailer {block}");
        } else {
            assert_eq!(got, want, "block {block}");
        }
    }

    // Write a changed image back (`w`, not `W`) and check what the card holds. Debian's
    // nfc-mfclassic 1.8.0 sends a write for the first block of each sector only (its trace
    // shows no other), so change block 4.
    let mut changed = dump.clone();
    changed[16 * 4..16 * 5].copy_from_slice(b"written-by-libnf");
    std::fs::write(dir.path().join("changed.mfd"), &changed).expect("changed");
    let out = libnfc(
        &link,
        "nfc-mfclassic",
        &["w", "a", "u", "changed.mfd"],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // `w` leaves the 16 sector trailers alone: 60 of 64.
    assert!(text.contains("Done, 60 of 64 blocks written"), "{text}");
    assert!(emu.quit().success());
    let saved = std::fs::read(&save).expect("saved image");
    assert_eq!(&saved[16 * 4..16 * 5], b"written-by-libnf");
    assert_eq!(&saved[..16], &original[..16], "block 0 is read-only");
}
