//! TensorBoard event files without TensorFlow: TFRecord framing (length, masked CRC-32C of the
//! length, payload, masked CRC-32C of the payload) around `Event` protobufs encoded by hand.
//! Only the fields TensorBoard's scalar dashboard reads are written:
//! `Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
//! summary = 5 (Summary { value = 1 (repeated Value { tag = 1 (string), simple_value = 2 (float) }) }) }`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// TFRecord's CRC mask: rotate right by 15 and add a constant.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord frame around `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
    out
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u32, out: &mut Vec<u8>) {
    varint(((field << 3) | wire) as u64, out);
}

fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// An `Event` with a wall time, a step and either a file version or scalars.
pub fn encode_event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    scalars: &[(String, f32)],
) -> Vec<u8> {
    let mut ev = Vec::new();
    key(1, 1, &mut ev);
    ev.extend_from_slice(&wall_time.to_le_bytes());
    key(2, 0, &mut ev);
    varint(step as u64, &mut ev);
    if let Some(v) = file_version {
        bytes_field(3, v.as_bytes(), &mut ev);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut val = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut val);
            key(2, 5, &mut val);
            val.extend_from_slice(&value.to_le_bytes());
            bytes_field(1, &val, &mut summary);
        }
        bytes_field(5, &summary, &mut ev);
    }
    ev
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Starts `events.out.tfevents.<time>.oneshot` in `dir` with the version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let t = now();
        let path = dir.join(format!("events.out.tfevents.{}.oneshot", t as u64));
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&frame(&encode_event(t, 0, Some("brain.Event:2"), &[])))?;
        Ok(Self { file, path })
    }

    pub fn scalars(&mut self, step: i64, scalars: &[(String, f32)]) -> Result<()> {
        self.file
            .write_all(&frame(&encode_event(now(), step, None, scalars)))
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_mask_match_the_reference_values() {
        // CRC-32C check value of "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let expected = 0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc(b"123456789"), expected);
    }

    #[test]
    fn frames_and_events_have_the_documented_layout() {
        let ev = encode_event(1.5, 3, None, &[("acc".into(), 0.25)]);
        // wall_time (tag 0x09 + 8 bytes), step (0x10, 3), summary (0x2a, len, value ...)
        assert_eq!(ev[0], 0x09);
        assert_eq!(f64::from_le_bytes(ev[1..9].try_into().unwrap()), 1.5);
        assert_eq!(&ev[9..11], &[0x10, 3]);
        assert_eq!(ev[11], 0x2a);
        let value = [0x0a, 3, b'a', b'c', b'c', 0x15, 0, 0, 0x80, 0x3e];
        assert_eq!(
            &ev[13..],
            &[&[0x0a, value.len() as u8][..], &value[..]].concat()[..]
        );
        let f = frame(&ev);
        assert_eq!(
            u64::from_le_bytes(f[..8].try_into().unwrap()),
            ev.len() as u64
        );
        assert_eq!(
            u32::from_le_bytes(f[8..12].try_into().unwrap()),
            masked_crc(&f[..8])
        );
        assert_eq!(&f[12..12 + ev.len()], &ev[..]);
        assert_eq!(
            u32::from_le_bytes(f[12 + ev.len()..].try_into().unwrap()),
            masked_crc(&ev)
        );
    }
}
