//! Reading state dicts from the official PyTorch checkpoints (`torch.save` zip + pickle)
//! and from `.safetensors` files.
//!
//! Why not `candle_core::pickle::PthTensors`: it opens the zip with `ZipArchive::new`, whose
//! archive-offset detection misplaces the central directory of some valid torch files
//! (seen with the project's `edtalk_tiny_container.pt`). A torch zip always starts at byte
//! 0, so we open it with a known offset of 0 and drive candle's pickle [`Stack`] ourselves.
//! Storages are read once each, so tensors that share one are not read twice, and strided
//! (non-contiguous) tensors are supported.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Device, Tensor};
use zip::ZipArchive;
use zip::read::{ArchiveOffset, Config};

/// The top-level keys the official checkpoints keep their state dicts under, tried in this
/// order when no key is given: `gen` (EDTalk.pt, EDTalk_lip_pose.pt), `audio2lip`
/// (Audio2Lip.pt), then the common `state_dict` / `model`.
pub const KNOWN_STATE_DICT_KEYS: [&str; 4] = ["gen", "audio2lip", "state_dict", "model"];

/// What can go wrong reading a checkpoint. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file cannot be opened or read (missing, permissions...).
    #[error("cannot read checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Neither a torch zip nor a safetensors file.
    #[error("{path} is not a checkpoint: {found}")]
    UnknownFormat {
        /// The checkpoint file.
        path: PathBuf,
        /// What the first bytes look like.
        found: String,
    },
    /// The torch zip container is damaged or truncated.
    #[error("{path} is not a readable torch zip archive (damaged or truncated?): {source}")]
    Zip {
        /// The checkpoint file.
        path: PathBuf,
        /// The zip reader's complaint.
        source: zip::result::ZipError,
    },
    /// A record of the torch zip is missing or unreadable.
    #[error("{path}: record `{record}`: {reason}")]
    Record {
        /// The checkpoint file.
        path: PathBuf,
        /// The zip entry, e.g. `archive/data/3`.
        record: String,
        /// What was wrong.
        reason: String,
    },
    /// The pickled object graph could not be decoded.
    #[error("{path}: cannot decode the pickle `{record}`: {reason}")]
    Pickle {
        /// The checkpoint file.
        path: PathBuf,
        /// The zip entry holding the pickle.
        record: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// The requested top-level key is not in the checkpoint.
    #[error("{path} has no top-level key `{key}`; keys found: {found:?}")]
    MissingKey {
        /// The checkpoint file.
        path: PathBuf,
        /// The key asked for.
        key: String,
        /// The top-level keys present.
        found: Vec<String>,
    },
    /// No key was given and none of [`KNOWN_STATE_DICT_KEYS`] holds a state dict.
    #[error(
        "{path}: no state dict found at the top level nor under any of {KNOWN_STATE_DICT_KEYS:?}; top-level keys: {found:?}"
    )]
    NoStateDict {
        /// The checkpoint file.
        path: PathBuf,
        /// The top-level keys present.
        found: Vec<String>,
    },
    /// A tensor entry this reader cannot rebuild (unsupported storage dtype, odd layout).
    #[error("{path}: tensor `{name}`: {reason}")]
    UnsupportedTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The state-dict name.
        name: String,
        /// What is unsupported.
        reason: String,
    },
    /// A storage record holds fewer bytes than the tensors viewing it need.
    #[error("{path}: tensor `{name}` needs {needed} bytes of `{record}` but it holds {found}")]
    ShortStorage {
        /// The checkpoint file.
        path: PathBuf,
        /// The state-dict name.
        name: String,
        /// The storage's zip entry.
        record: String,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// A safetensors file failed to parse.
    #[error("{path}: cannot read safetensors: {reason}")]
    Safetensors {
        /// The checkpoint file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A tensor the caller needs is absent.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The state-dict name.
        name: String,
    },
    /// A tensor has a different shape than the caller needs.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The checkpoint file.
        path: PathBuf,
        /// The state-dict name.
        name: String,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape present.
        found: Vec<usize>,
    },
    /// A tensor operation failed while converting a tensor.
    #[error("{path}: tensor `{name}`: {source}")]
    Candle {
        /// The checkpoint file.
        path: PathBuf,
        /// The state-dict name.
        name: String,
        /// candle's error.
        source: Box<candle_core::Error>,
    },
}

/// Loads every tensor of a state dict, on the CPU. Floating-point tensors come out as f32
/// (f16/bf16/f64 are converted), integer tensors (e.g. BatchNorm's `num_batches_tracked`)
/// keep their dtype.
///
/// The format is recognised from the file's first bytes, not its name:
/// * a torch zip (`torch.save` since PyTorch 1.6): the state dict is the value of the
///   top-level `key`; with `None`, the top-level dict itself if it holds tensors, else the
///   first of [`KNOWN_STATE_DICT_KEYS`] present;
/// * safetensors: all tensors (`key` is ignored).
pub fn load_state_dict(
    path: &Path,
    key: Option<&str>,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let mut file = File::open(path).map_err(|source| io_error(path, source))?;
    let mut magic = [0u8; 9];
    let got = read_up_to(&mut file, &mut magic).map_err(|source| io_error(path, source))?;
    let magic = &magic[..got];
    if magic.starts_with(b"PK\x03\x04") || magic.starts_with(b"PK\x05\x06") {
        load_torch_zip(path, key)
    } else if magic.len() == 9 && magic[8] == b'{' {
        load_safetensors(path)
    } else if magic.first() == Some(&0x80) {
        Err(CheckpointError::UnknownFormat {
            path: path.to_owned(),
            found: "a legacy (pre-1.6, non-zip) torch pickle; re-save it with a current \
                    torch.save"
                .into(),
        })
    } else {
        Err(CheckpointError::UnknownFormat {
            path: path.to_owned(),
            found: format!(
                "first bytes {magic:02x?}, neither a zip (torch.save) nor a safetensors header"
            ),
        })
    }
}

/// Looks up `name` in a loaded state dict and checks its shape (`None`: any shape).
/// Errors name the file, the tensor, and the expected and found shapes.
pub fn take(
    tensors: &HashMap<String, Tensor>,
    name: &str,
    expected_shape: Option<&[usize]>,
    file: &Path,
) -> Result<Tensor, CheckpointError> {
    let t = tensors
        .get(name)
        .ok_or_else(|| CheckpointError::MissingTensor {
            path: file.to_owned(),
            name: name.to_owned(),
        })?;
    if let Some(expected) = expected_shape
        && t.dims() != expected
    {
        return Err(CheckpointError::TensorShape {
            path: file.to_owned(),
            name: name.to_owned(),
            expected: expected.to_vec(),
            found: t.dims().to_vec(),
        });
    }
    Ok(t.clone())
}

fn io_error(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads as many bytes as available up to `buf.len()`.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn load_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let raw = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        CheckpointError::Safetensors {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    raw.into_iter()
        .map(|(name, t)| {
            let t = to_f32_if_float(t).map_err(|source| CheckpointError::Candle {
                path: path.to_owned(),
                name: name.clone(),
                source: Box::new(source),
            })?;
            Ok((name, t))
        })
        .collect()
}

fn to_f32_if_float(t: Tensor) -> candle_core::Result<Tensor> {
    if t.dtype().is_float() && t.dtype() != DType::F32 {
        t.to_dtype(DType::F32)
    } else {
        Ok(t)
    }
}

type Archive = ZipArchive<BufReader<File>>;

fn load_torch_zip(
    path: &Path,
    key: Option<&str>,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let config = Config {
        archive_offset: ArchiveOffset::Known(0),
    };
    let mut zip = ZipArchive::with_config(config, BufReader::new(file)).map_err(|source| {
        CheckpointError::Zip {
            path: path.to_owned(),
            source,
        }
    })?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|source| CheckpointError::Zip {
            path: path.to_owned(),
            source,
        })?;
    // torch.save writes `<archive>/data.pkl`; the archive folder name varies.
    let pickle_name = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") || n.as_str() == "data.pkl")
        .cloned()
        .ok_or_else(|| CheckpointError::Record {
            path: path.to_owned(),
            record: "data.pkl".into(),
            reason: format!("not found in the zip (entries: {})", preview(&names)),
        })?;
    let dir = pickle_name.strip_suffix(".pkl").unwrap_or(&pickle_name);
    check_byteorder(&mut zip, path, dir)?;

    let root = read_pickle(&mut zip, path, &pickle_name)?;
    let state = select_state_dict(root, key, path)?;

    let mut infos: Vec<TensorInfo> = Vec::new();
    for (name, value) in state {
        let label = match &name {
            Object::Unicode(s) => s.clone(),
            other => format!("{other:?}"),
        };
        match value.into_tensor_info(name, Path::new(dir)) {
            Ok(Some(info)) => infos.push(info),
            // Not a tensor (e.g. torch's `_metadata`): not part of the weights.
            Ok(None) => {}
            Err(e) => {
                return Err(CheckpointError::UnsupportedTensor {
                    path: path.to_owned(),
                    name: label,
                    reason: e.to_string(),
                });
            }
        }
    }

    // Read each storage record once and cut every tensor that views it.
    let mut by_record: BTreeMap<String, Vec<TensorInfo>> = BTreeMap::new();
    for info in infos {
        by_record.entry(info.path.clone()).or_default().push(info);
    }
    let mut out = HashMap::new();
    for (record, views) in by_record {
        let bytes = read_record(&mut zip, path, &record)?;
        for info in views {
            let t = tensor_from_storage(&bytes, &info, &record, path)?;
            out.insert(info.name, t);
        }
    }
    Ok(out)
}

fn preview(names: &[String]) -> String {
    let mut s = names.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 8 {
        s.push_str(&format!(", … {} more", names.len() - 8));
    }
    s
}

fn read_record(zip: &mut Archive, path: &Path, record: &str) -> Result<Vec<u8>, CheckpointError> {
    let err = |reason: String| CheckpointError::Record {
        path: path.to_owned(),
        record: record.to_owned(),
        reason,
    };
    let mut entry = zip.by_name(record).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("read failed (truncated file?): {e}")))?;
    Ok(bytes)
}

/// torch writes `byteorder` ("little" / "big") since 1.10; older files are little-endian.
fn check_byteorder(zip: &mut Archive, path: &Path, dir: &str) -> Result<(), CheckpointError> {
    let record = match dir.strip_suffix("/data") {
        Some(root) => format!("{root}/byteorder"),
        None => "byteorder".to_owned(),
    };
    if zip.index_for_name(&record).is_none() {
        return Ok(());
    }
    let bytes = read_record(zip, path, &record)?;
    let order = String::from_utf8_lossy(&bytes);
    if order.trim() != "little" {
        return Err(CheckpointError::Record {
            path: path.to_owned(),
            record,
            reason: format!(
                "byte order `{}` is not supported (only little)",
                order.trim()
            ),
        });
    }
    Ok(())
}

fn read_pickle(zip: &mut Archive, path: &Path, record: &str) -> Result<Object, CheckpointError> {
    let bytes = read_record(zip, path, record)?;
    let perr = |reason: String| CheckpointError::Pickle {
        path: path.to_owned(),
        record: record.to_owned(),
        reason,
    };
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut &bytes[..])
        .map_err(|e| perr(e.to_string()))?;
    stack.finalize().map_err(|e| perr(e.to_string()))
}

fn is_tensor(value: &Object) -> bool {
    match value {
        Object::Reduce { callable, .. } => matches!(
            callable.as_ref(),
            Object::Class { module_name, class_name }
                if (module_name == "torch._utils"
                    && (class_name == "_rebuild_tensor_v2" || class_name == "_rebuild_parameter"))
                    || (module_name == "torch._tensor" && class_name == "_rebuild_from_type_v2")
        ),
        _ => false,
    }
}

fn key_name(k: &Object) -> String {
    match k {
        Object::Unicode(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Picks the state dict out of the unpickled root object.
fn select_state_dict(
    root: Object,
    key: Option<&str>,
    path: &Path,
) -> Result<Vec<(Object, Object)>, CheckpointError> {
    let entries = match root {
        Object::Dict(entries) => entries,
        other => {
            return Err(CheckpointError::NoStateDict {
                path: path.to_owned(),
                found: vec![format!("(top level is not a dict: {})", describe(&other))],
            });
        }
    };
    let keys: Vec<String> = entries.iter().map(|(k, _)| key_name(k)).collect();
    let wanted: Option<String> = match key {
        Some(k) => {
            if !keys.iter().any(|f| f == k) {
                return Err(CheckpointError::MissingKey {
                    path: path.to_owned(),
                    key: k.to_owned(),
                    found: keys,
                });
            }
            Some(k.to_owned())
        }
        None if entries.iter().any(|(_, v)| is_tensor(v)) => None,
        None => match KNOWN_STATE_DICT_KEYS
            .iter()
            .find(|k| keys.iter().any(|f| f == *k))
        {
            Some(k) => Some((*k).to_owned()),
            None => {
                return Err(CheckpointError::NoStateDict {
                    path: path.to_owned(),
                    found: keys,
                });
            }
        },
    };
    let Some(wanted) = wanted else {
        return Ok(entries);
    };
    let value = entries
        .into_iter()
        .find(|(k, _)| key_name(k) == wanted)
        .map(|(_, v)| v);
    match value {
        Some(Object::Dict(sd)) => Ok(sd),
        Some(other) => Err(CheckpointError::NoStateDict {
            path: path.to_owned(),
            found: vec![format!(
                "`{wanted}` holds {} rather than a dict of tensors",
                describe(&other)
            )],
        }),
        None => Err(CheckpointError::MissingKey {
            path: path.to_owned(),
            key: wanted,
            found: keys,
        }),
    }
}

fn describe(o: &Object) -> &'static str {
    match o {
        Object::Class { .. } => "a class",
        Object::Int(_) | Object::Long(_) => "an integer",
        Object::Float(_) => "a float",
        Object::Unicode(_) => "a string",
        Object::Bool(_) => "a bool",
        Object::None => "None",
        Object::Tuple(_) => "a tuple",
        Object::List(_) => "a list",
        Object::Mark => "a pickle mark",
        Object::Dict(_) => "a dict",
        Object::Reduce { .. } => "an object",
        Object::Build { .. } => "an object",
        Object::PersistentLoad(_) => "a storage reference",
    }
}

/// Cuts one tensor out of its storage bytes, honouring offset and strides (torch may store
/// views), and converts floats to f32.
fn tensor_from_storage(
    bytes: &[u8],
    info: &TensorInfo,
    record: &str,
    path: &Path,
) -> Result<Tensor, CheckpointError> {
    let elem = info.dtype.size_in_bytes();
    let dims = info.layout.dims().to_vec();
    let strides = info.layout.stride().to_vec();
    // candle's layout keeps the start offset in bytes already.
    let start = info.layout.start_offset();
    let count: usize = dims.iter().product();
    let unsupported = |reason: String| CheckpointError::UnsupportedTensor {
        path: path.to_owned(),
        name: info.name.clone(),
        reason,
    };
    if !start.is_multiple_of(elem) {
        return Err(unsupported(format!(
            "storage offset of {start} bytes is not a multiple of the element size {elem}"
        )));
    }
    // The furthest element any index reaches, in elements from the start.
    let reach = if count == 0 {
        0
    } else {
        dims.iter()
            .zip(&strides)
            .map(|(d, s)| (d - 1) * s)
            .sum::<usize>()
            + 1
    };
    let needed = start + reach * elem;
    if bytes.len() < needed {
        return Err(CheckpointError::ShortStorage {
            path: path.to_owned(),
            name: info.name.clone(),
            record: record.to_owned(),
            needed,
            found: bytes.len(),
        });
    }
    let contiguous = info.layout.is_contiguous();
    let data: std::borrow::Cow<[u8]> = if contiguous {
        std::borrow::Cow::Borrowed(&bytes[start..start + count * elem])
    } else {
        let mut gathered = Vec::with_capacity(count * elem);
        let mut index = vec![0usize; dims.len()];
        for _ in 0..count {
            let off = start
                + index
                    .iter()
                    .zip(&strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>()
                    * elem;
            gathered.extend_from_slice(&bytes[off..off + elem]);
            // Odometer increment, last dimension fastest.
            for d in (0..dims.len()).rev() {
                index[d] += 1;
                if index[d] < dims[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        std::borrow::Cow::Owned(gathered)
    };
    let candle = |source| CheckpointError::Candle {
        path: path.to_owned(),
        name: info.name.clone(),
        source: Box::new(source),
    };
    let t = Tensor::from_raw_buffer(&data, info.dtype, &dims, &Device::Cpu).map_err(candle)?;
    to_f32_if_float(t).map_err(candle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_reports_name_and_shapes() {
        let mut m = HashMap::new();
        m.insert(
            "a.weight".to_string(),
            Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        let file = Path::new("x.pt");
        assert!(take(&m, "a.weight", Some(&[2, 3]), file).is_ok());
        assert!(take(&m, "a.weight", None, file).is_ok());
        let e = take(&m, "a.weight", Some(&[3, 2]), file)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.pt")
                && e.contains("a.weight")
                && e.contains("[2, 3]")
                && e.contains("[3, 2]"),
            "{e}"
        );
        let e = take(&m, "b", None, file).unwrap_err().to_string();
        assert!(e.contains("missing tensor `b`"), "{e}");
    }
}
