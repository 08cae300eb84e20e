//! `desfire_card`: what the virtual `DESFire` card (`encoder_sim::desfire`) reads from a reader:
//! any frames, wrapped or native, in and out of sessions, chains and tears.

use encoder_sim::card::TearMode;
use encoder_sim::desfire::{Desfire, Generation, Status};

use crate::input::Input;

/// The first byte picks the generation (low 2 bits), whether a tear is armed (bit 2, after
/// byte 1 writes) and whether frames are wrapped (bit 3, else each frame says); then frames,
/// each a length byte (up to 80) and the bytes. A few fixed frames are mixed in by a selector
/// byte 0xFF..0xFC so that sessions, applications and files come up: a factory card accepts
/// `CreateApplication`, `SelectApplication` and `CreateBackupDataFile` without keys.
///
/// Properties: the card answers every frame (unless it tore); a wrapped answer ends in `91 xx`
/// or a two-byte ISO status; after an error status the card is not authenticated; the image
/// reads back to the same applications and PICC settings (those of the card out of the field:
/// uncommitted writes are not in it).
pub fn desfire_card(data: &[u8]) {
    let mut input = Input::new(data);
    let head = input.byte();
    let generation = [
        Generation::Ev0,
        Generation::Ev1,
        Generation::Ev2,
        Generation::Ev3,
    ]
    .get(usize::from(head & 0x03))
    .copied()
    .unwrap_or(Generation::Ev1);
    let mut card = Desfire::new(generation, [0x04, 0x51, 0x22, 0x33, 0x44, 0x55, 0x66]);
    if head & 0x04 != 0 {
        card.set_tear_after_writes(Some(u32::from(input.byte() % 8)), TearMode::Half);
    }
    let mut frames = 0;
    while !input.is_empty() && frames < 64 {
        frames += 1;
        let frame: Vec<u8> = match input.byte() {
            0xFF => vec![0x90, 0xCA, 0, 0, 5, 0x01, 0, 0, 0x0F, 0x82, 0],
            0xFE => vec![0x90, 0x5A, 0, 0, 3, 0x01, 0, 0, 0],
            0xFD => vec![0x90, 0xCB, 0, 0, 7, 0x01, 0x00, 0xEE, 0xEE, 0x20, 0, 0, 0],
            0xFC => vec![0x90, 0x71, 0, 0, 2, 0, 0, 0],
            n => {
                let body = input.bytes(usize::from(n % 81));
                if head & 0x08 != 0 && body.len() >= 2 {
                    let (&ins, rest) = body.split_first().unwrap_or((&0x60, &[]));
                    let mut f = vec![0x90, ins, 0, 0];
                    if !rest.is_empty() {
                        f.push(u8::try_from(rest.len()).unwrap_or(0));
                        f.extend_from_slice(rest);
                    }
                    f.push(0);
                    f
                } else {
                    body.to_vec()
                }
            }
        };
        let answer = card.process(&frame);
        if card.is_torn() {
            assert!(answer.is_empty(), "a torn card answers nothing");
            card.insert();
            continue;
        }
        assert!(!answer.is_empty(), "no answer to {frame:02X?}");
        let status = if frame.first() == Some(&0x90) {
            match answer.as_slice() {
                [.., 0x91, sw] => Status::from_code(*sw),
                [_, _] => None,
                other => panic!("wrapped answer without a status: {other:02X?}"),
            }
        } else {
            answer.first().copied().and_then(Status::from_code)
        };
        if let Some(status) = status
            && !status.is_success()
            && status != Status::AdditionalFrame
        {
            assert!(!card.is_authenticated(), "{status:?} left a session open");
        }
    }
    // The image holds what a card taken from the field keeps: no uncommitted writes.
    card.deselect();
    let back = match Desfire::from_image(card.to_image().as_bytes()) {
        Ok(back) => back,
        Err(e) => panic!("the card's own image does not read back: {e}"),
    };
    assert_eq!(back.applications(), card.applications());
    assert_eq!(back.picc(), card.picc());
}
