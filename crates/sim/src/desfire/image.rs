//! The card image of `--load` / `--save`: JSON, every byte string in hex
//! (docs/reference/desfire-card.md §8). Keys are in the image in clear: it is a test card.
//!
//! Uncommitted backup writes are not part of the image (a card saved on removal has lost them,
//! as a real card in the field loses them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::applications::{Application, Key, KeyType, PiccMaster};
use super::files::{AccessRights, DataFile, FileKind};
use super::{Desfire, Generation};
use crate::error::{hex as spaced_hex, parse_hex};

/// Hex without spaces.
fn hex(bytes: &[u8]) -> String {
    spaced_hex(bytes).replace(' ', "")
}

/// The `format` field of this layout.
pub const FORMAT: &str = "encoder-sim-desfire/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    format: String,
    generation: String,
    uid: String,
    #[serde(default)]
    random_uid: bool,
    #[serde(default)]
    format_disabled: bool,
    picc: Picc,
    #[serde(default)]
    applications: Vec<App>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Picc {
    key_settings: u8,
    key_type: String,
    key: String,
    key_version: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct App {
    /// The AID as a number in hex, most significant first (`00DE16`).
    aid: String,
    key_settings: u8,
    key_type: String,
    keys: Vec<AppKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iso_fid: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    df_name: Option<String>,
    #[serde(default)]
    files: Vec<File>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppKey {
    key: String,
    version: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    no: u8,
    /// `standard` or `backup`.
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iso_fid: Option<u16>,
    /// The communication-settings byte.
    comm: u8,
    /// The two access-right bytes as on the wire, in hex (`EEEE`).
    access: String,
    data: String,
}

fn generation_name(g: Generation) -> String {
    format!("desfire-{}", g.name())
}

impl Desfire {
    /// The image as JSON.
    pub fn to_image(&self) -> String {
        let image = Image {
            format: FORMAT.to_owned(),
            generation: generation_name(self.generation),
            uid: hex(&self.uid),
            random_uid: self.random_uid,
            format_disabled: self.format_disabled,
            picc: Picc {
                key_settings: self.picc.key_settings,
                key_type: self.picc.key_type.name().to_owned(),
                key: hex(&self.picc.key.bytes),
                key_version: self.picc.key.version,
            },
            applications: self
                .apps
                .values()
                .map(|a| App {
                    aid: hex(&[a.aid[2], a.aid[1], a.aid[0]]),
                    key_settings: a.key_settings,
                    key_type: a.key_type.name().to_owned(),
                    keys: a
                        .keys
                        .iter()
                        .map(|k| AppKey {
                            key: hex(&k.bytes),
                            version: k.version,
                        })
                        .collect(),
                    iso_fid: a.iso_fid,
                    df_name: a.df_name.as_deref().map(hex),
                    files: a
                        .files
                        .iter()
                        .map(|(no, f)| File {
                            no: *no,
                            kind: match f.kind {
                                FileKind::Standard => "standard",
                                FileKind::Backup => "backup",
                            }
                            .to_owned(),
                            iso_fid: f.iso_fid,
                            comm: f.comm,
                            access: hex(&f.access.to_bytes()),
                            data: hex(&f.data),
                        })
                        .collect(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&image).unwrap_or_default()
    }

    /// A card from a JSON image; the error says what is wrong.
    pub fn from_image(json: &[u8]) -> Result<Self, String> {
        let image: Image = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        if image.format != FORMAT {
            return Err(format!("format {:?}, expected {FORMAT:?}", image.format));
        }
        let generation = [
            Generation::Ev0,
            Generation::Ev1,
            Generation::Ev2,
            Generation::Ev3,
        ]
        .into_iter()
        .find(|g| generation_name(*g) == image.generation)
        .ok_or_else(|| format!("unknown generation {:?}", image.generation))?;
        let bytes = |what: &str, s: &str| parse_hex(s).map_err(|e| format!("{what}: {e}"));
        let uid: [u8; 7] = bytes("uid", &image.uid)?
            .try_into()
            .map_err(|_| "uid: 7 bytes expected".to_owned())?;
        let key_type =
            |s: &str| KeyType::from_name(s).ok_or_else(|| format!("unknown key type {s:?}"));
        let picc_type = key_type(&image.picc.key_type)?;
        let picc_key = Key::new(
            picc_type,
            &bytes("picc key", &image.picc.key)?,
            image.picc.key_version,
        )
        .ok_or("picc key: wrong length for its type")?;
        let mut card = Self::new(generation, uid);
        card.random_uid = image.random_uid;
        card.format_disabled = image.format_disabled;
        card.picc = PiccMaster {
            key_settings: image.picc.key_settings,
            key_type: picc_type,
            key: picc_key,
        };
        for app in image.applications {
            let aid_be = bytes("aid", &app.aid)?;
            let &[a2, a1, a0] = aid_be.as_slice() else {
                return Err(format!("aid {:?}: 3 bytes expected", app.aid));
            };
            let kt = key_type(&app.key_type)?;
            let keys = app
                .keys
                .iter()
                .map(|k| {
                    bytes("key", &k.key).and_then(|b| {
                        Key::new(kt, &b, k.version).ok_or_else(|| "key: wrong length".to_owned())
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() || keys.len() > 14 {
                return Err(format!("application {}: 1 to 14 keys", app.aid));
            }
            let mut files = BTreeMap::new();
            for f in app.files {
                let kind = match f.kind.as_str() {
                    "standard" => FileKind::Standard,
                    "backup" => FileKind::Backup,
                    other => return Err(format!("unknown file kind {other:?}")),
                };
                let access: [u8; 2] = bytes("access", &f.access)?
                    .try_into()
                    .map_err(|_| "access: 2 bytes expected".to_owned())?;
                let data = bytes("data", &f.data)?;
                let mut file =
                    DataFile::new(kind, f.iso_fid, f.comm, AccessRights::from_bytes(access), 0);
                file.data = data;
                files.insert(f.no, file);
            }
            let aid = [a0, a1, a2];
            card.apps.insert(
                aid,
                Application {
                    aid,
                    key_settings: app.key_settings,
                    key_type: kt,
                    keys,
                    iso_fid: app.iso_fid,
                    df_name: app
                        .df_name
                        .as_deref()
                        .map(|n| bytes("df_name", n))
                        .transpose()?,
                    files,
                },
            );
        }
        Ok(card)
    }
}
